using System.Globalization;

namespace NqmValidate.Reports;

/// <summary>How the reports write numbers that recur in them, so every table and evidence string agrees.</summary>
public static class Numbers
{
    /// <summary>
    /// A signed log2 (errors, ratios, slopes) to two decimals. The third section matters: with two sections .NET writes
    /// a negative number that rounds to zero as "-+0.00" (the first section behind a minus sign).
    /// </summary>
    public const string SignedFormat = "+0.00;-0.00;+0.00";

    public static string Signed(double value) => value.ToString(SignedFormat, CultureInfo.InvariantCulture);

    /// <summary><see cref="Signed(double)"/>, or empty for no value (as an interpolated null is).</summary>
    public static string Signed(double? value) => value is double v ? Signed(v) : "";

    /// <summary>
    /// Three significant figures, as "G3" but without an exponent from 1,000 to 999,999 (a critical batch size of
    /// 1,004 is "1000", not "1E+03"; 1,730 is "1730"; 999.6, which G3 rounds to "1E+03", too).
    /// </summary>
    public static string Figures3(double value)
    {
        double a = Math.Abs(value);
        if (!(a >= 999.5 && a < 999_500)) return value.ToString("G3", CultureInfo.InvariantCulture);
        double unit = Math.Pow(10, Math.Max(Math.Floor(Math.Log10(a)), 3) - 2);
        return (Math.Round(value / unit, MidpointRounding.AwayFromZero) * unit).ToString("0", CultureInfo.InvariantCulture);
    }
}
