using System.Globalization;

namespace Analytics.Store.Tests;

/// <summary>
/// Background statements run on engine threads at nice 10 and normal ones at -1, observed in
/// the kernel's own view of this process's threads (/proc/self/task/*/stat), not in the engine's
/// settings. The engine sets nice values only with CAP_SYS_NICE; without it both run at 0.
/// (ChDbEngine.SessionNiceValue says why these values.)
/// </summary>
public class StatementPriorityTests(ChDbFixture fixture)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // About half a second of one core: long enough to be sampled many times.
    private const string Busy = "SELECT count() FROM numbers(30000000) WHERE NOT ignore(sipHash64(number)) SETTINGS max_threads = 1";

    [Fact]
    public async Task A_background_statement_runs_on_threads_at_nice_10_and_a_normal_one_at_minus_1()
    {
        (int background, int normal) expected = ChDbEngine.CanPrioritize ? (10, -1) : (0, 0);
        // Taking turns on the same sessions and pool threads: in a check while normal statements
        // ran at 0, 1 in 12 of them after a background one at 10 ran at 10.
        for (int round = 0; round < 4; round++)
        {
            var background = await CpuByNiceValueWhileRunningAsync(fixture.Store.WithPriority(StatementPriority.Background));
            var normal = await CpuByNiceValueWhileRunningAsync(fixture.Store);

            // Most of the statement's CPU (about half a second of one core) at the nice value
            // asked for; other tests' statements beside it run at -1, so that is not all of it.
            Assert.True(background.GetValueOrDefault(expected.background) >= 0.25, Describe($"background {round}", background));
            Assert.True(normal.GetValueOrDefault(expected.normal) >= 0.25, Describe($"normal {round}", normal));
            // None of a normal statement at 10, but for a tick or so: CPU is counted in 10 ms ticks
            // and sampled every 5 ms, each delta under the nice value the thread has at the sample,
            // so a thread whose value changed between two samples can put a tick under the other
            // value (seen in CI: "10: 0.01" beside 2.6 s at -1 and 0). The bug this guards
            // against ran whole statements at 10 (≥ 0.25 s).
            if (ChDbEngine.CanPrioritize) Assert.True(normal.GetValueOrDefault(10) <= 0.05, Describe($"normal {round}", normal));
        }
    }

    [Fact]
    public async Task The_engine_runs_its_merges_at_the_background_nice_value()
    {
        var rows = await fixture.Store.QueryRowsAsync("SELECT value FROM system.server_settings WHERE name = 'os_threads_nice_value_merge_mutate'", Ct);
        Assert.Equal("10", rows[0][0].GetString());
    }

    [Fact]
    public void CanPrioritize_says_whether_the_process_has_CAP_SYS_NICE()
    {
        // Read independently of ChDbEngine: capsh's decoding of the effective set, bit 23.
        var line = File.ReadLines("/proc/self/status").Single(l => l.StartsWith("CapEff:", StringComparison.Ordinal));
        var mask = Convert.ToUInt64(line["CapEff:".Length..].Trim(), 16);
        Assert.Equal((mask & (1UL << 23)) != 0, ChDbEngine.CanPrioritize);
    }

    private static string Describe(string label, Dictionary<int, double> cpu) =>
        $"{label}: CPU seconds by nice value: {string.Join(", ", cpu.OrderBy(c => c.Key).Select(c => $"{c.Key}: {c.Value:F2}"))}";

    // CPU seconds the engine's statement threads (every thread but the merges', which run at the
    // background value by design, and the runtime's) used while the busy statement ran on the
    // given store, by the nice value each thread had when sampled (every 5 ms).
    private static async Task<Dictionary<int, double>> CpuByNiceValueWhileRunningAsync(IColumnStore store)
    {
        var cpu = new Dictionary<int, double>();
        var last = Threads().ToDictionary(t => t.Id, t => t.Ticks);
        var running = store.QueryRowsAsync(Busy, Ct);
        while (!running.IsCompleted)
        {
            await Task.Delay(5, Ct);
            foreach (var thread in Threads())
            {
                long before = last.GetValueOrDefault(thread.Id);
                last[thread.Id] = thread.Ticks;
                if (thread.Name != "MergeMutate" && thread.Ticks > before)
                    cpu[thread.Nice] = cpu.GetValueOrDefault(thread.Nice) + (thread.Ticks - before) / 100.0; // USER_HZ
            }
        }
        await running;
        return cpu;
    }

    private static IEnumerable<(string Id, string Name, int Nice, long Ticks)> Threads()
    {
        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            string stat;
            try
            {
                stat = File.ReadAllText(Path.Combine(task, "stat"));
            }
            catch (IOException)
            {
                continue; // the thread ended
            }
            // pid (comm) state …: utime and stime are fields 14 and 15 and nice is 19, counted
            // from 1 (proc(5)); after the closing parenthesis the state is field 3.
            int close = stat.LastIndexOf(')');
            var fields = stat[(close + 2)..].Split(' ');
            yield return (Path.GetFileName(task), stat[(stat.IndexOf('(') + 1)..close], int.Parse(fields[16], CultureInfo.InvariantCulture),
                long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture));
        }
    }
}
