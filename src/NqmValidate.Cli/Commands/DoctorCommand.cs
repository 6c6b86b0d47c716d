using System.CommandLine;
using NqmValidate.Training.Runtime;
using TorchSharp;

namespace NqmValidate.Cli.Commands;

/// <summary>`nqm doctor`: checks that LibTorch loads and says which devices are usable.</summary>
public static class DoctorCommand
{
    public static Command Create()
    {
        var command = new Command("doctor", "Check that TorchSharp loads on this machine and list usable devices.");
        command.SetAction(_ =>
        {
            try
            {
                TorchRuntime.Initialize(1);
                using var x = torch.ones(2, 2);
                Console.WriteLine($"TorchSharp {typeof(torch).Assembly.GetName().Version}: loaded; " +
                                  $"cpu ok (sum check {x.sum().item<float>()}); cuda {(TorchRuntime.CudaAvailable() ? "available" : "not available")}.");
                return ExitCodes.Ok;
            }
            catch (TorchLoadException e)
            {
                Console.Error.WriteLine(e.Message);
                return ExitCodes.Failure;
            }
        });
        return command;
    }
}
