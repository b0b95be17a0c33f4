using System.Buffers;
using Analytics.ControlPlane;
using Analytics.FastIngest.Protocol;
using Analytics.FastIngest.Transport;
using Analytics.FastIngest.Validation;
using Analytics.QueryService.Query;
using SharpFuzz;

namespace Analytics.Fuzz;

/// <summary>The four targets: the WebSocket frame reader, the protobuf batch reader, the event
/// validator, and the /v1/query request parser.</summary>
internal static class Targets
{
    /// <summary>No static state here: the instrumented assemblies write coverage into SharpFuzz's
    /// shared memory from their first instruction on, which exists only once
    /// Fuzzer.LibFuzzer.Run has attached it; state touching them lives in <see cref="State"/>,
    /// first used inside a target.</summary>
    public static ReadOnlySpanAction For(string name) => name switch
    {
        "frames" => Frames,
        "batch" => Batch,
        "validator" => Validator,
        "query" => Query,
        _ => throw new ArgumentException("unknown target " + name, nameof(name)),
    };

    private static class State
    {
        public static readonly IngestLimits Limits = IngestLimits.Default;
        public static readonly byte[] Control = new byte[125];
        public static readonly Site Site = new(1, "k7q2xw4mbd5rj3ta", 1, "key", "shop.example", "Europe/Berlin", "Shop");
        public static readonly QueryParser.Context Context = new(id => id == Site.PublicId ? Site : null, _ => [],
            _ => Task.FromResult<DateTimeOffset?>(new DateTimeOffset(2026, 3, 10, 5, 0, 0, TimeSpan.Zero)), _ => Task.FromResult<string?>(null),
            new DateTimeOffset(2026, 11, 30, 14, 0, 0, TimeSpan.Zero));
    }

    /// <summary>Frames as a client sends them, read the way WebSocketIngest reads its pipe:
    /// frame after frame until the reader wants more bytes or refuses.</summary>
    private static void Frames(ReadOnlySpan<byte> input)
    {
        var sequence = new ReadOnlySequence<byte>(input.ToArray());
        byte[] message = [];
        int messageLength = 0;
        try
        {
            while (true)
            {
                long before = sequence.Length;
                var status = WebSocketFrames.TryRead(ref sequence, ref message, messageLength, 64 * 1024, State.Control, out var frame);
                if (status != WebSocketFrames.ReadStatus.Frame) break;
                if (sequence.Length >= before) throw new InvalidOperationException($"a frame read consumed nothing ({before} bytes left)");
                if (frame.PayloadLength < 0 || frame.PayloadLength > 64 * 1024) throw new InvalidOperationException($"payload length {frame.PayloadLength} past the limit");
                if (frame.Opcode < WebSocketFrames.OpClose) messageLength = frame.Fin ? 0 : messageLength + frame.PayloadLength;
            }
        }
        finally
        {
            if (message.Length > 0) ArrayPool<byte>.Shared.Return(message);
        }
    }

    /// <summary>An EventBatch message: the batch, its events and their properties.</summary>
    private static void Batch(ReadOnlySpan<byte> input)
    {
        if (!BatchView.TryParse(input, out var batch)) return;
        EventValidator.IsSiteKeyFormat(batch.SiteKey, State.Limits);
        int events = 0;
        foreach (var raw in batch.GetEvents())
        {
            events++;
            if (!EventView.TryParse(raw, out var e)) continue;
            int properties = 0;
            foreach (var _ in e.GetProperties()) properties++;
            if (properties > e.PropertyCount) throw new InvalidOperationException($"{properties} properties enumerated, {e.PropertyCount} counted");
        }
        if (events > batch.EventCount) throw new InvalidOperationException($"{events} events enumerated, {batch.EventCount} counted");
    }

    /// <summary>One Event message through the validator (what ingest does to each event).</summary>
    private static void Validator(ReadOnlySpan<byte> input)
    {
        if (!EventView.TryParse(input, out var e)) return;
        EventValidator.Validate(e, State.Limits);
        EventValidator.IsCleanText(e.Name);
    }

    /// <summary>A /v1/query body as the endpoint reads it (QueryParser.ParseBody, then
    /// ParseAsync): answered, or refused with QueryException (400) or UnknownSiteException (404).</summary>
    private static void Query(ReadOnlySpan<byte> input)
    {
        try
        {
            using var document = QueryParser.ParseBody(input.ToArray());
            QueryParser.ParseAsync(document.RootElement, State.Context).GetAwaiter().GetResult();
        }
        catch (QueryException) { }
        catch (QueryParser.UnknownSiteException) { }
    }
}
