using NqmValidate.Nqm;

namespace NqmValidate.Nqm.Tests;

public class SpectrumTests
{
    /// <summary>docs/design/nqm.md §1: 100 geometric bins, h rounded down to an edge, 84 non-empty, initial loss 4.70 instead of 4.89.</summary>
    [Fact]
    public void PaperBinningMatchesTheNotebook()
    {
        var s = Spectrum.PaperPowerLaw();
        Assert.Equal(100, s.Rows.Length);
        Assert.Equal(84, s.Rows.Count(r => r.Count > 0));
        Assert.Equal(10000, s.Dimensions);
        Assert.Equal(4.70, s.InitialLoss, 0.005);
        var full = Spectrum.PaperPowerLaw(bins: null);
        Assert.Equal(4.89, full.InitialLoss, 0.005);
        // Every h_i went to the largest edge at or below it: brute-force the same assignment.
        var edges = s.Rows.Select(r => r.H).ToArray();
        var counts = new double[edges.Length];
        for (int i = 1; i <= 10000; i++)
        {
            double h = 1.0 / i;
            int j = Array.FindIndex(edges, e => e <= h);
            counts[j]++;
        }
        Assert.Equal(counts, s.Rows.Select(r => r.Count).ToArray());
    }

    [Fact]
    public void FromParametersBinsGeometricallyAndSetsAsideZeroCurvature()
    {
        double[] h = { 1.0, 0.9, 0.011, 0.01, 0.0, -0.5, 1e-3 };
        double[] c = { 1.0, 1.0, 2.0, 2.0, 3.0, 5.0, 4.0 };
        var s = Spectrum.FromParameters(h, c, bins: 3);
        Assert.Equal(7, s.Dimensions);
        Assert.Equal(2, s.ZeroCurvatureDimensions);
        var zero = s.Rows.Single(r => r.H == 0);
        Assert.Equal(4.0, zero.C); Assert.Equal(2, zero.Count);
        var top = s.Rows.First();
        Assert.Equal(0.95, top.H, 12); Assert.Equal(2, top.Count);
        Assert.Equal(3, s.Rows.Count(r => r.H > 0));
        // Zero-curvature rows carry no loss: the initial loss is ½ Σ h s0 over h > 0.
        Assert.Equal(0.5 * (1.0 + 0.9 + 0.011 + 0.01 + 1e-3), s.InitialLoss, 12);
    }

    [Fact]
    public void CsvReadsTotalRowsAndRejectsBadInput()
    {
        var text = "layer,h,c,count,s0,grad_mean_sq\nfc1,1,1,5,1,0\ntotal,0.5,0.25,10,2,0\ntotal,0.1,0.05,100,,0\n";
        var s = SpectrumCsv.Read(new StringReader(text), "t.csv");
        Assert.Equal(2, s.Rows.Length);
        Assert.Equal(new SpectrumRow(0.5, 0.25, 2, 10), s.Rows[0]);
        Assert.Equal(1.0, s.Rows[1].S0);
        var e = Assert.Throws<SpectrumFormatException>(() => SpectrumCsv.Read(new StringReader("h,count\n1,2\n"), "x.csv"));
        Assert.Contains("x.csv", e.Message); Assert.Contains("'c'", e.Message);
        e = Assert.Throws<SpectrumFormatException>(() => SpectrumCsv.Read(new StringReader("h,c,count\n1,abc,2\n"), "y.csv"));
        Assert.Contains("abc", e.Message); Assert.Contains("line", e.Message);
        Assert.Throws<SpectrumFormatException>(() => SpectrumCsv.Read(new StringReader("h,c,count\n1,-1,2\n"), "z.csv"));
    }

    [Fact]
    public void NumpyGridsMatchKnownValues()
    {
        var lr = HyperparameterSearch.NotebookSgdRates;
        Assert.Equal(1e-5, lr[0]); Assert.Equal(Math.Pow(10, 0.5), lr[^1]);
        Assert.Equal(100, lr.Count);
        var betas = HyperparameterSearch.NotebookSecondGrid;
        Assert.Equal(1 - 1e-5, betas[0]); Assert.Equal(0.0, betas[^1]);
    }
}
