// The `analytics` binary: see Cli/AnalyticsCli.cs for the command line and its contract.
return await Analytics.Host.Cli.AnalyticsCli.RunAsync(args);
