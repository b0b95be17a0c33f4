// Where a command's settings come from, and how they are checked before anything starts.
//
// Contract: a setting is a command-line option that may also be given in the environment or in
// appsettings.json. Precedence, highest first: the command line, then `ANALYTICS_<NAME>`
// environment variables, then the "Analytics" section of appsettings.json (optional, next to the
// binary), then the default in the settings class. One naming rule links the three: the option
// `--clickhouse-password` is `ANALYTICS_CLICKHOUSE_PASSWORD` and `"ClickHousePassword"` in the
// JSON (dashes and underscores dropped, case ignored), so no setting has its own lookup code.
// Values are bound to a settings class through the options pattern and validated (data
// annotations plus the class's IValidateOptions) before the command runs; a bad value from any
// source ends the command with one line naming the setting and exit code 2.
// Per-invocation arguments (a domain, a date range) are command-line only.
using System.Collections;
using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Numerics;
using Microsoft.Extensions.Options;

namespace Analytics.Host.Cli;

/// <summary>Settings every command has: the data directory.</summary>
public class CommonSettings
{
    public const string Section = "Analytics";
    public const string EnvironmentPrefix = "ANALYTICS_";

    /// <summary>Registry, local event log, admin token, engine data.</summary>
    public string Data { get; set; } = ".data";

    /// <summary>The data directory as an absolute path.</summary>
    public string DataDirectory() => Path.GetFullPath(Data);
}

/// <summary>Settings of commands that open the control plane (docs/control-plane.md).</summary>
public class ControlPlaneSettings : CommonSettings
{
    /// <summary>`sqlite:PATH` or `postgres:CONNECTION-STRING`; null: SQLite in the data directory.</summary>
    public string? ControlPlane { get; set; }

    public string ControlPlaneSpec() => ControlPlane ?? Analytics.ControlPlane.ControlPlaneStore.DefaultSpec(DataDirectory());

    public static Option<string> Option() => new("--control-plane")
    {
        Description = "Merchants, sites, users and salts: sqlite:PATH or postgres:CONNECTION-STRING [default: sqlite:DATA/control-plane.db]",
        HelpName = "SPEC",
    };
}

public static class Settings
{
    /// <summary>--data: recursive, so it is accepted after any command (run.sh appends it).</summary>
    public static readonly Option<string> Data = new("--data")
    {
        Description = "Data directory: registry, event log, admin token, engine data",
        HelpName = "DIR",
        Recursive = true,
        DefaultValueFactory = _ => new CommonSettings().Data,
    };

    /// <summary>
    /// Binds and validates <typeparamref name="T"/> from appsettings.json, the environment and the
    /// options given on <paramref name="parse"/>'s command line (defaults of the command line are
    /// not given values: they must not hide the environment).
    /// </summary>
    /// <exception cref="UsageException">A value does not convert or does not validate.</exception>
    public static T Bind<T>(ParseResult parse, Action<IServiceCollection>? validators = null) where T : class
    {
        var services = new ServiceCollection();
        services.AddOptions<T>().Bind(Configuration(parse).GetSection(CommonSettings.Section)).ValidateDataAnnotations();
        validators?.Invoke(services);
        using var provider = services.BuildServiceProvider();
        try
        {
            return provider.GetRequiredService<IOptions<T>>().Value;
        }
        catch (OptionsValidationException e)
        {
            throw new UsageException(string.Join("; ", e.Failures));
        }
        catch (InvalidOperationException e) when (e.Message.StartsWith("Failed to convert configuration value", StringComparison.Ordinal))
        {
            // "Failed to convert configuration value 'abc' at 'Analytics:LogicVersion' to type 'System.UInt16'."
            throw new UsageException(e.Message.Replace("at '" + CommonSettings.Section + ":", "for setting '", StringComparison.Ordinal)
                + " (from ANALYTICS_* or appsettings.json)");
        }
    }

    /// <summary>The layered configuration: appsettings.json, ANALYTICS_*, then the command line.</summary>
    public static IConfiguration Configuration(ParseResult parse)
    {
        var given = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        for (SymbolResult? result = parse.CommandResult; result is CommandResult command; result = command.Parent)
        {
            foreach (var option in command.Command.Options)
            {
                if (parse.GetResult(option) is not { Implicit: false } value || given.ContainsKey(Key(option.Name))) continue;
                // A flag given without a value (--demo) is true.
                given[Key(option.Name)] = value.Tokens.Count == 0 ? "true" : string.Join(',', value.Tokens.Select(t => t.Value));
            }
        }
        return new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(AppContext.BaseDirectory, "appsettings.json"), optional: true, reloadOnChange: false)
            .AddInMemoryCollection(EnvironmentValues())
            .AddInMemoryCollection(given)
            .Build();
    }

    /// <summary>"--clickhouse-password" and "ANALYTICS_CLICKHOUSE_PASSWORD" both become
    /// "Analytics:clickhousepassword", which binds ClickHousePassword (the binder ignores case).</summary>
    private static string Key(string name) =>
        CommonSettings.Section + ":" + name.TrimStart('-').Replace("-", "", StringComparison.Ordinal).Replace("_", "", StringComparison.Ordinal);

    private static Dictionary<string, string?> EnvironmentValues()
    {
        var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            if (entry.Key is string name && name.StartsWith(CommonSettings.EnvironmentPrefix, StringComparison.Ordinal))
                values[Key(name[CommonSettings.EnvironmentPrefix.Length..])] = entry.Value as string;
        }
        return values;
    }

    /// <summary>
    /// An integer option whose bad value reads as a sentence ("--visitors: 'x' is not a whole
    /// number from 1 to 10000") instead of naming a .NET type. Without a default, a value not
    /// given falls through to the environment, appsettings.json and the settings class.
    /// </summary>
    public static Option<T> Integer<T>(string name, string description, T min, T max, T? defaultValue = null) where T : struct, IBinaryInteger<T>
    {
        var option = new Option<T>(name)
        {
            Description = description,
            HelpName = "N",
            CustomParser = result =>
            {
                string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
                if (T.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out T value) && value >= min && value <= max) return value;
                result.AddError($"{name}: '{text}' is not a whole number from {min} to {max}");
                return T.Zero;
            },
        };
        if (defaultValue is { } d) option.DefaultValueFactory = _ => d;
        return option;
    }

    /// <summary>A merchant or site id: a positive whole number.</summary>
    public static Option<long> Id(string name, string description, bool required)
    {
        var option = Integer(name, description, 1L, long.MaxValue);
        option.HelpName = "ID";
        option.Required = required;
        return option;
    }

    /// <summary>A day as YYYY-MM-DD (UTC days, as the admin API takes them).</summary>
    public static Option<DateOnly> Day(string name, string description) =>
        new(name)
        {
            Description = description,
            HelpName = "YYYY-MM-DD",
            Required = true,
            CustomParser = result =>
            {
                string text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
                if (DateOnly.TryParseExact(text, "yyyy-MM-dd", CultureInfo.InvariantCulture, DateTimeStyles.None, out var day)) return day;
                result.AddError($"{name}: '{text}' is not a day as YYYY-MM-DD");
                return default;
            },
        };

    /// <summary>A string option limited to a few words, listed in help and in the error.</summary>
    public static Option<string> OneOf(string name, string description, params string[] values)
    {
        var option = new Option<string>(name) { Description = description, HelpName = string.Join('|', values) };
        option.Validators.Add(result =>
        {
            string? value = result.GetValueOrDefault<string>();
            if (!values.Contains(value)) result.AddError($"{name}: '{value}' is not one of {string.Join(", ", values)}");
        });
        return option;
    }
}

/// <summary>A mistake in how the command was called (an option, a value, a setting): exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>The command was called right but could not start (port taken, data directory, engine
/// library): exit code 1, one line.</summary>
public sealed class StartupException(string message, Exception? inner = null) : Exception(message, inner);
