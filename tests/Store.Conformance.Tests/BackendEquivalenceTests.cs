using Xunit.Sdk;

namespace Analytics.Store.Conformance.Tests;

/// <summary>The same product work on both backends must leave the same data and give the same
/// dashboards, compared as the engine printed them.</summary>
public sealed class BackendEquivalenceTests(BackendsFixture fixture, ITestOutputHelper output)
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Embedded_and_driver_backends_store_and_answer_identically()
    {
        var scenario = new ProductScenario(20_000);
        var results = new List<(IReadOnlyList<string> Dump, IReadOnlyList<string> Dashboard)>();
        foreach (IColumnStore store in new IColumnStore[] { fixture.Embedded, fixture.Server })
        {
            var db = "eq_" + Guid.NewGuid().ToString("N");
            await ProductScenario.MigrateAsync(store, db, Ct);
            await scenario.StoreAsync(store, db, Ct);
            var dump = await ProductScenario.DumpAsync(store, db, Ct);
            results.Add((dump, await ProductScenario.DashboardAsync(store, db, Ct)));
        }

        var (embedded, server) = (results[0], results[1]);
        output.WriteLine($"compared {embedded.Dump.Count} stored rows and {embedded.Dashboard.Count} dashboard answers");
        Assert.True(embedded.Dump.Count > 20_000 * 2, "the dump must hold every raw and enriched row");
        Assert.Equal(embedded.Dump.Count, server.Dump.Count);
        for (var i = 0; i < embedded.Dump.Count; i++)
        {
            if (embedded.Dump[i] != server.Dump[i])
                throw new XunitException($"stored row {i} differs:\nembedded: {embedded.Dump[i]}\ndriver:   {server.Dump[i]}");
        }
        Assert.Equal(embedded.Dashboard, server.Dashboard);
    }
}
