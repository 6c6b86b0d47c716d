using NqmValidate.Training;
using NqmValidate.Training.Data;
using NqmValidate.Training.Models;
using NqmValidate.Training.Optimizers;
using NqmValidate.Training.Runtime;
using NqmValidate.Training.Trials;
using NqmValidate.Training.Workloads;
using static TorchSharp.torch;

namespace NqmValidate.Torch.Tests.Training;

/// <summary>
/// The workload seam: a regression workload that is nothing but a new class runs through the real trial (update rule,
/// evaluation schedule, target search) with its own loss and no classification error.
/// </summary>
public class WorkloadTests
{
    /// <summary>y = w*·x + ε with x ~ N(0, 1)^D and ε ~ N(0, σ²); a bias-free linear model; loss ½(z − y)².</summary>
    sealed class LinearRegressionWorkload : IWorkload, IDisposable
    {
        public const int D = 8;
        public const double Sigma = 0.5;

        public LinearRegressionWorkload()
        {
            var g = new Generator(3);
            var wStar = randn([D, 1], generator: g);
            DataSplit Split(string name, long n)
            {
                var x = randn([n, D], generator: g);
                return new DataSplit(name, x, x.matmul(wStar) + Sigma * randn([n, 1], generator: g));
            }
            Train = Split("train", 4096);
            Validation = Split("validation", 512);
        }

        public string Name => "linear-regression";
        public DataSplit Train { get; }
        public DataSplit Validation { get; }
        public OutputLossKind OutputLoss => OutputLossKind.SquaredError;

        public nn.Module<Tensor, Tensor> CreateModel(ModelSpec spec, long seed, Device device)
        {
            // This workload has one model whatever the spec names (a workload with a model family would resolve it).
            // Its weights come from its own generator: the global one is shared with tests running in parallel.
            var model = nn.Linear(D, 1, hasBias: false);
            using var g = new Generator((ulong)seed);
            using (no_grad()) model.weight!.copy_(randn([1, D], generator: g) * 0.1);
            return model;
        }

        public Tensor Loss(Tensor output, Tensor targets) => 0.5 * (output - targets).square().mean();

        public (Tensor LossSum, Tensor? Correct) Score(Tensor output, Tensor targets) => (0.5 * (output - targets).square().sum(), null);

        public void Dispose()
        {
            foreach (var s in new[] { Train, Validation }) { s.Images.Dispose(); s.Labels.Dispose(); }
        }
    }

    [Fact]
    public void ARegressionWorkloadTrainsToItsTargetThroughTheRealTrial()
    {
        TorchRuntime.Initialize(1);
        using var workload = new LinearRegressionWorkload();
        const double floor = LinearRegressionWorkload.Sigma * LinearRegressionWorkload.Sigma / 2; // the Bayes loss ½σ²
        var config = new TrialConfig
        {
            Model = new ModelSpec("mlp"), Optimizer = new OptimizerSpec("sgd", 0.1), BatchSize = 32,
            Target = new Target(TargetMetric.TrainLoss, 1.5 * floor), MaxSteps = 2000, Seed = 1, EvalExamples = 1024,
        };
        var r = TrialRunner.Run(config, workload);
        Assert.Equal(TrialStatus.Reached, r.Record.Status);
        Assert.True(r.Record.FinalLoss < 1.5 * floor && r.Record.FinalLoss > 0.8 * floor, $"final loss {r.Record.FinalLoss}, floor {floor}");
        Assert.Null(r.Record.FinalValidationError);

        // Oracle for "the trial evaluates the workload's loss": the initial model's ½ mean squared error on the evaluation subset.
        using var model = workload.CreateModel(config.Model, Seeds.Derive(config.Seed, Seeds.ModelStream), CPU);
        using var noGrad = no_grad();
        double initial = workload.Loss(model.call(workload.Train.Images.narrow(0, 0, 1024)), workload.Train.Labels.narrow(0, 0, 1024)).item<float>();
        Assert.Equal(initial, r.Record.InitialLoss!.Value, 4);
    }
}
