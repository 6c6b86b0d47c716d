using System.CommandLine;
using NqmValidate.Training.Runtime;
using TorchSharp;

namespace NqmValidate.Cli.Commands;

/// <summary>`nqm doctor`: checks that LibTorch loads, says which devices are usable and what the numerics depend on (<see cref="MachineProvenance"/>).</summary>
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
                // What a trial's numbers depend on (recorded in every trial.json as `machine`).
                var machine = MachineProvenance.Current();
                Console.WriteLine("machine: " + machine.Describe());
                foreach (var note in machine.Notes) Console.WriteLine("  note: " + note);
                if (machine.LibTorchConfig is { } config)
                    Console.WriteLine("LibTorch build (at::show_config):" + Environment.NewLine + string.Join(Environment.NewLine, config.Split('\n').Select(l => "  " + l)));
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
