using NqmValidate.Cli;

return await NqmApp.RunAsync(args);
