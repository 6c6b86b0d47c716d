using System.Net;
using System.Text;
using NqmValidate.Common;

namespace NqmValidate.Reports;

/// <summary>A block of a report.</summary>
public abstract record ReportBlock;

public sealed record Heading(int Level, string Text) : ReportBlock;

/// <summary>A paragraph of plain text (Markdown emphasis is not interpreted; code spans in `backticks` are).</summary>
public sealed record Paragraph(string Text) : ReportBlock;

public sealed record BulletList(IReadOnlyList<string> Items) : ReportBlock;

/// <summary>A table; <see cref="Source"/> names the CSV in the run directory its numbers come from.</summary>
public sealed record Table(IReadOnlyList<string> Header, IReadOnlyList<IReadOnlyList<string>> Rows, string? Source = null) : ReportBlock;

/// <summary>A figure: a PNG saved next to the Markdown file and embedded in the HTML.</summary>
public sealed record Figure(string FileName, byte[] Png, string Caption) : ReportBlock;

public sealed record Preformatted(string Text) : ReportBlock;

/// <summary>
/// A report as a list of blocks, rendered two ways from the same content: Markdown (figures as
/// files beside it) and a self-contained HTML page (figures embedded as data URIs, opens offline).
/// </summary>
public sealed class ReportDocument(string title)
{
    readonly List<ReportBlock> _blocks = [];

    public string Title { get; } = title;
    public IReadOnlyList<ReportBlock> Blocks => _blocks;

    public ReportDocument Add(ReportBlock block) { _blocks.Add(block); return this; }

    public string ToMarkdown()
    {
        var md = new StringBuilder();
        md.Append("# ").AppendLine(Title).AppendLine();
        foreach (var block in _blocks)
        {
            switch (block)
            {
                case Heading h: md.Append(new string('#', Math.Clamp(h.Level + 1, 2, 6))).Append(' ').AppendLine(h.Text); break;
                case Paragraph p: md.AppendLine(p.Text); break;
                case BulletList l: foreach (var item in l.Items) md.Append("- ").AppendLine(item); break;
                case Table t:
                    md.Append("| ").Append(string.Join(" | ", t.Header.Select(EscapeCell))).AppendLine(" |");
                    md.Append('|').Append(string.Concat(t.Header.Select(_ => "---|"))).AppendLine();
                    foreach (var row in t.Rows) md.Append("| ").Append(string.Join(" | ", row.Select(EscapeCell))).AppendLine(" |");
                    if (t.Source is not null) md.AppendLine().Append("Source: `").Append(t.Source).AppendLine("`");
                    break;
                case Figure f: md.Append("![").Append(f.Caption).Append("](").Append(f.FileName).AppendLine(")").AppendLine().Append('*').Append(f.Caption).AppendLine("*"); break;
                case Preformatted pre: md.AppendLine("```").AppendLine(pre.Text.TrimEnd()).AppendLine("```"); break;
            }
            md.AppendLine();
        }
        return md.ToString();
    }

    public string ToHtml()
    {
        var html = new StringBuilder();
        html.AppendLine("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">")
            .Append("<title>").Append(Enc(Title)).AppendLine("</title>")
            .AppendLine("<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}" +
                        "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}" +
                        "th{background:#eee}td:first-child,th:first-child{text-align:left}figure{margin:1em 0}img{max-width:100%;border:1px solid #ddd}" +
                        "figcaption{font-style:italic;color:#555}pre{background:#f6f6f6;padding:0.8em;overflow-x:auto}.source{color:#777;font-size:0.8em}" +
                        ".holds{color:#176f2c;font-weight:bold}.fails{color:#b3261e;font-weight:bold}.inconclusive{color:#8a6d00;font-weight:bold}</style>")
            .AppendLine("</head><body>")
            .Append("<h1>").Append(Enc(Title)).AppendLine("</h1>");
        foreach (var block in _blocks)
        {
            switch (block)
            {
                case Heading h: html.Append($"<h{Math.Clamp(h.Level + 1, 2, 6)}>").Append(Enc(h.Text)).AppendLine($"</h{Math.Clamp(h.Level + 1, 2, 6)}>"); break;
                case Paragraph p: html.Append("<p>").Append(Inline(p.Text)).AppendLine("</p>"); break;
                case BulletList l: html.Append("<ul>").Append(string.Concat(l.Items.Select(i => "<li>" + Inline(i) + "</li>"))).AppendLine("</ul>"); break;
                case Table t:
                    html.Append("<table><thead><tr>").Append(string.Concat(t.Header.Select(c => "<th>" + Enc(c) + "</th>"))).Append("</tr></thead><tbody>");
                    foreach (var row in t.Rows) html.Append("<tr>").Append(string.Concat(row.Select(Cell))).Append("</tr>");
                    html.AppendLine("</tbody></table>");
                    if (t.Source is not null) html.Append("<div class=\"source\">Source: <code>").Append(Enc(t.Source)).AppendLine("</code></div>");
                    break;
                case Figure f:
                    html.Append("<figure><img alt=\"").Append(Enc(f.Caption)).Append("\" src=\"data:image/png;base64,")
                        .Append(Convert.ToBase64String(f.Png)).Append("\"><figcaption>").Append(Enc(f.Caption)).AppendLine("</figcaption></figure>");
                    break;
                case Preformatted pre: html.Append("<pre>").Append(Enc(pre.Text)).AppendLine("</pre>"); break;
            }
        }
        // Lets a headless browser check that every embedded figure decoded (scripts/check-report reads it back).
        html.AppendLine("<script>window.addEventListener('load',function(){var ok=0;for(var i=0;i<document.images.length;i++){if(document.images[i].naturalWidth>0)ok++;}" +
                        "document.body.setAttribute('data-images-decoded',ok);document.body.setAttribute('data-images-total',document.images.length);});</script>");
        html.AppendLine("</body></html>");
        return html.ToString();
    }

    /// <summary>Writes DIR/report.md, DIR/report.html and the figures as DIR/FILE.png, all atomically.</summary>
    public void Save(string directory, string baseName = "report")
    {
        foreach (var figure in _blocks.OfType<Figure>())
            AtomicFile.WriteAllBytes(Path.Combine(directory, figure.FileName), figure.Png);
        AtomicFile.WriteAllText(Path.Combine(directory, baseName + ".md"), ToMarkdown());
        AtomicFile.WriteAllText(Path.Combine(directory, baseName + ".html"), ToHtml());
    }

    static string EscapeCell(string s) => s.Replace("|", "\\|").Replace("\n", " ");

    static string Enc(string s) => WebUtility.HtmlEncode(s);

    static string Cell(string s)
    {
        string cls = s switch { "holds" => " class=\"holds\"", "fails" => " class=\"fails\"", "inconclusive" => " class=\"inconclusive\"", _ => "" };
        return "<td" + cls + ">" + Inline(s) + "</td>";
    }

    // `code` spans only; everything else is escaped text.
    static string Inline(string s)
    {
        var parts = Enc(s).Split('`');
        var sb = new StringBuilder();
        for (int i = 0; i < parts.Length; i++) sb.Append(i % 2 == 1 ? "<code>" + parts[i] + "</code>" : parts[i]);
        return sb.ToString();
    }
}
