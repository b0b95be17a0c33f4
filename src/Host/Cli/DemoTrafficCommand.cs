// `analytics demo-traffic`: simulated visitors against a running server (see DemoTraffic).
using System.CommandLine;

namespace Analytics.Host.Cli;

public sealed class DemoTrafficCommand : ICommandGroup
{
    public int Order => 60;

    public IEnumerable<Command> Commands()
    {
        var url = new Option<string>("--url") { Description = "The server's WebSocket ingest endpoint", HelpName = "URL", DefaultValueFactory = _ => "ws://127.0.0.1:5080/v1/ws" };
        url.Validators.Add(result =>
        {
            string? value = result.GetValueOrDefault<string>();
            if (!Uri.TryCreate(value, UriKind.Absolute, out var uri) || uri.Scheme is not ("ws" or "wss"))
                result.AddError($"--url: '{value}' is not a ws:// or wss:// URL, e.g. ws://127.0.0.1:5080/v1/ws");
        });
        var siteKey = new Option<string>("--site-key") { Description = "Site key to send to", HelpName = "KEY", DefaultValueFactory = _ => DemoSite.Key };
        var visitors = Settings.Integer("--visitors", "Simulated visitors, each on its own WebSocket", 1, 10_000, defaultValue: 20);
        var seconds = Settings.Integer("--seconds", "How long to send", 1, 86_400, defaultValue: 60);
        var command = new Command("demo-traffic", "Send simulated visitors to a running server") { url, siteKey, visitors, seconds };
        command.SetAction(parse => DemoTraffic.RunAsync(parse.GetValue(url)!, parse.GetValue(siteKey)!,
            parse.GetValue(visitors), TimeSpan.FromSeconds(parse.GetValue(seconds))));
        yield return command;
    }
}
