using Analytics.ControlPlane;

namespace Analytics.Host;

/// <summary>
/// Mistakes a user can make at start (a bad --control-plane, an unreachable database, a taken
/// site key, an invalid option value, issuer key files others can read) end the process with one clear line on stderr and exit
/// code 1, never a stack trace. Anything else is a bug and keeps the runtime's full report.
/// </summary>
public static class StartupErrors
{
    public static void Install() => AppDomain.CurrentDomain.UnhandledException += (_, e) =>
    {
        if (e.ExceptionObject is ControlPlaneUnavailableException or ControlPlaneConflictException or ArgumentException or Analytics.Identity.IssuerKeysException)
        {
            Console.Error.WriteLine("analytics: " + ((Exception)e.ExceptionObject).Message);
            Environment.Exit(1);
        }
    };
}
