// Guards the chDB signal-handler trap (see src/Store/Native/SignalStateGuard.cs): after the
// engine is open, the .NET runtime must still turn faults into exceptions and suspend threads
// for GC. Without the guard the first test here hangs or kills the test process.
using System.Runtime.CompilerServices;
using Analytics.Store.Native;

namespace Analytics.Store.Tests;

public class SignalHandlingTests(ChDbFixture fixture)
{
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static string? NullString() => null;

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int Zero() => 0;

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static int DereferenceNull() => NullString()!.Length;

    [Fact]
    public void Null_dereference_after_engine_open_is_a_catchable_NullReferenceException()
    {
        Assert.Equal("1\n", fixture.Engine.Query("SELECT 1"));

        var caught = false;
        try
        {
            _ = DereferenceNull();
        }
        catch (NullReferenceException)
        {
            caught = true;
        }
        Assert.True(caught);
        Assert.Equal("2\n", fixture.Engine.Query("SELECT 2"));
    }

    [Fact]
    public async Task Null_dereference_on_a_pool_thread_is_a_catchable_NullReferenceException()
    {
        await fixture.Store.ExecuteAsync("SELECT 1", TestContext.Current.CancellationToken);
        var caught = await Task.Run(() =>
        {
            try
            {
                _ = DereferenceNull();
                return false;
            }
            catch (NullReferenceException)
            {
                return true;
            }
        }, TestContext.Current.CancellationToken);
        Assert.True(caught);
    }

    [Fact]
    public void Index_out_of_range_divide_by_zero_and_forced_GC_work_and_queries_still_run()
    {
        var array = new int[3];
        Assert.Throws<IndexOutOfRangeException>(() => array[array.Length + Zero()] = 1);
        // Integer division by zero reaches the runtime as SIGFPE on x64.
        Assert.Throws<DivideByZeroException>(() => 1 / Zero());

        // Garbage that needs a compacting collection, while the engine has its threads running.
        var keep = new List<byte[]>();
        for (var i = 0; i < 2_000; i++)
        {
            var chunk = new byte[16 * 1024];
            if (i % 10 == 0)
                keep.Add(chunk);
        }
        GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        GC.Collect();
        Assert.Equal(200, keep.Count);

        Assert.Equal("499999500000\n", fixture.Engine.Query("SELECT sum(number) FROM numbers(1000000)"));
    }

    [Fact]
    public async Task Running_statements_does_not_reinstall_the_engine_signal_handlers()
    {
        using var snapshot = SignalStateGuard.Capture();
        var db = await fixture.NewDatabaseAsync("sig");
        await fixture.Store.ExecuteAsync($"CREATE TABLE {db}.t (a UInt64) ENGINE = MergeTree ORDER BY a", TestContext.Current.CancellationToken);
        await fixture.Store.ExecuteAsync($"INSERT INTO {db}.t SELECT number FROM numbers(100000)", TestContext.Current.CancellationToken);
        var rows = await fixture.Store.QueryRowsAsync($"SELECT count() FROM {db}.t", TestContext.Current.CancellationToken);
        Assert.Equal(100_000UL, rows[0][0].GetUInt64());

        Assert.Empty(snapshot.ChangedSignals());
    }
}
