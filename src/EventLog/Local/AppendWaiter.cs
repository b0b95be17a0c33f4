using System.Threading.Tasks.Sources;

namespace Analytics.EventLog.Local;

/// <summary>
/// Completion of one AppendAsync call, pooled so a steady stream of appends allocates nothing.
/// Continuations run asynchronously: the writer thread must not run callers' code, or one slow
/// caller would delay the next group commit for everyone.
/// </summary>
internal sealed class AppendWaiter : IValueTaskSource
{
    private readonly Action<AppendWaiter> _return;
    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };

    public AppendWaiter(Action<AppendWaiter> returnToPool) => _return = returnToPool;

    public ValueTask Task => new(this, _core.Version);

    public void Succeed() => _core.SetResult(true);

    public void Fail(Exception error) => _core.SetException(error);

    void IValueTaskSource.GetResult(short token)
    {
        try
        {
            _core.GetResult(token);
        }
        finally
        {
            _core.Reset();
            _return(this);
        }
    }

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
