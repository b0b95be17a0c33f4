using System.Text;
using Analytics.Tests.Shared;

namespace Analytics.ControlPlane.Tests;

/// <summary>What unknown keys and a failing store cost the registry: the store calls are counted.</summary>
public sealed class SiteRegistryTests
{
    /// <summary>A clock whose timestamps the test moves (the registry reads only timestamps).</summary>
    private sealed class ManualClock : TimeProvider
    {
        public long Now { get; set; } = 1_000_000;
        public override long GetTimestamp() => Now;
        public override long TimestampFrequency => TimeSpan.TicksPerSecond;
        public void Advance(TimeSpan by) => Now += by.Ticks;
    }

    private static byte[] Key(string key) => Encoding.ASCII.GetBytes(key);

    [Fact]
    public void Unknown_keys_past_the_cap_keep_it_and_a_key_repeated_after_them_is_looked_up_once()
    {
        var (store, script) = ScriptedControlPlaneStore.Create();
        using var registry = new SiteRegistry(store);
        int distinct = SiteRegistry.MaxNegativeEntries + 5_000;
        for (int i = 0; i < distinct; i++) Assert.Null(registry.ResolveAccess(Key("invented-" + i)));
        Assert.Equal(distinct, script.KeyLookups);
        Assert.Equal(SiteRegistry.MaxNegativeEntries, registry.UnknownKeysCached);

        for (int i = 0; i < 1_000; i++) Assert.Null(registry.ResolveAccess(Key("repeated-unknown")));
        Assert.Equal(distinct + 1, script.KeyLookups);
        Assert.Equal(SiteRegistry.MaxNegativeEntries, registry.UnknownKeysCached);
    }

    [Fact]
    public void Unknown_keys_leave_the_count_when_they_expire_and_are_then_asked_again()
    {
        var (store, script) = ScriptedControlPlaneStore.Create();
        var clock = new ManualClock();
        using var registry = new SiteRegistry(store, clock);
        for (int i = 0; i < 10; i++) registry.ResolveAccess(Key("gone-" + i));
        registry.ResolveAccess(Key("gone-0"));
        Assert.Equal((10, 10), (registry.UnknownKeysCached, script.KeyLookups));

        clock.Advance(SiteRegistry.CacheTtl + TimeSpan.FromSeconds(1));
        registry.ResolveAccess(Key("new-one"));
        Assert.Equal((1, 11), (registry.UnknownKeysCached, script.KeyLookups));
        registry.ResolveAccess(Key("gone-0"));
        Assert.Equal((2, 12), (registry.UnknownKeysCached, script.KeyLookups));
    }

    [Fact]
    public async Task Concurrent_misses_of_one_key_make_one_store_lookup()
    {
        var (store, script) = ScriptedControlPlaneStore.Create();
        using var gate = new ManualResetEventSlim(false);
        script.Gate = gate;
        using var registry = new SiteRegistry(store);
        var resolves = Enumerable.Range(0, 8).Select(_ => Task.Run(() => registry.ResolveAccess(Key("one-key")))).ToArray();
        SpinWait.SpinUntil(() => script.KeyLookups > 0, TimeSpan.FromSeconds(10));
        // Every resolve has had time to reach the store if it were going to.
        Thread.Sleep(300);
        gate.Set();
        Assert.All(await Task.WhenAll(resolves), Assert.Null);
        Assert.Equal(1, script.KeyLookups);
    }

    [Fact]
    public void A_failing_store_surfaces_as_unavailable_for_keys_and_salts_and_a_cached_key_keeps_answering()
    {
        var (store, script) = ScriptedControlPlaneStore.Create();
        var clock = new ManualClock();
        using var registry = new SiteRegistry(store, clock);
        Assert.NotNull(registry.ResolveAccess(Key(ScriptedControlPlaneStore.KnownSite.SiteKey)));
        script.FailKeys = true;
        script.FailSalt = true;
        Assert.Throws<ControlPlaneUnavailableException>(() => registry.ResolveAccess(Key("not-cached")));
        Assert.Throws<ControlPlaneUnavailableException>(() => registry.GetSalt(new DateOnly(2026, 12, 2)));
        // Past its TTL the known key is refreshed in the background, whose failure keeps the entry.
        clock.Advance(SiteRegistry.CacheTtl + TimeSpan.FromSeconds(1));
        Assert.NotNull(registry.ResolveAccess(Key(ScriptedControlPlaneStore.KnownSite.SiteKey)));
        Assert.Equal(0, registry.UnknownKeysCached);
    }
}
