using System.Buffers;
using System.Diagnostics;
using Analytics.FastIngest.Protocol;
using Analytics.FastIngest.Validation;
using Google.Protobuf;
using static Analytics.FastIngest.Transport.WebSocketFrames;

namespace Analytics.FastIngest.Tests;

/// <summary>
/// A coverage-less mutation fuzzer (not SharpFuzz/libFuzzer: no instrumentation, no corpus
/// growth) over what parses hostile bytes at ingest: the WebSocket frame reader, the protobuf
/// batch/event/property readers and the validator. Seeds are valid batches (encoded by
/// Google.Protobuf) and valid frames; each input is a seed with random byte flips, insertions,
/// deletions, truncations, splices and length-varint edits. The property: no exception, ever,
/// and a frame read never consumes more than it was given. Bounded by time
/// (ANALYTICS_FUZZ_SECONDS, default 3 s per target) with a seed printed for replay
/// (ANALYTICS_FUZZ_SEED).
/// </summary>
public class MutationFuzzTests
{
    private static double Seconds => double.TryParse(Environment.GetEnvironmentVariable("ANALYTICS_FUZZ_SECONDS"), System.Globalization.CultureInfo.InvariantCulture, out double s) ? s : 3;
    private static int Seed => int.TryParse(Environment.GetEnvironmentVariable("ANALYTICS_FUZZ_SEED"), out int s) ? s : Environment.TickCount;

    private static byte[] Mutate(Random r, byte[] seed, byte[] other)
    {
        var bytes = new List<byte>(seed);
        int steps = 1 + r.Next(6);
        for (int s = 0; s < steps; s++)
        {
            int at = bytes.Count == 0 ? 0 : r.Next(bytes.Count);
            switch (r.Next(7))
            {
                case 0 when bytes.Count > 0: bytes[at] ^= (byte)(1 << r.Next(8)); break;
                case 1: bytes.Insert(at, (byte)r.Next(256)); break;
                case 2 when bytes.Count > 0: bytes.RemoveAt(at); break;
                case 3: bytes.RemoveRange(at, bytes.Count - at); break;
                case 4: bytes.InsertRange(at, other.Skip(r.Next(Math.Max(1, other.Length))).Take(r.Next(64))); break;
                // Interesting values where protobuf lengths and WebSocket lengths live.
                case 5 when bytes.Count > 0: bytes[at] = (byte)(new[] { 0x00, 0x7F, 0x80, 0xFF, 0x7E, 0x0A, 0x12 })[r.Next(7)]; break;
                default: bytes.InsertRange(at, new byte[] { 0xFF, 0xFF, 0xFF, 0xFF, 0x0F }.Take(1 + r.Next(5))); break;
            }
        }
        return [.. bytes];
    }

    private static long Run(byte[][] seeds, Action<byte[]> target, string name)
    {
        int seed = Seed;
        var r = new Random(seed);
        var watch = Stopwatch.StartNew();
        long executions = 0;
        while (watch.Elapsed.TotalSeconds < Seconds)
        {
            var input = Mutate(r, seeds[r.Next(seeds.Length)], seeds[r.Next(seeds.Length)]);
            try
            {
                target(input);
            }
            catch (Exception e)
            {
                Assert.Fail($"{name} threw on input {Convert.ToHexString(input)} (ANALYTICS_FUZZ_SEED={seed}): {e}");
            }
            executions++;
        }
        TestContext.Current.TestOutputHelper?.WriteLine($"{name}: {executions:N0} executions in {watch.Elapsed.TotalSeconds:0.0} s, seed {seed}");
        return executions;
    }

    private static byte[][] BatchSeeds()
    {
        var r = new Random(7);
        return [.. Enumerable.Range(0, 32).Select(_ => Samples.RandomBatch(r).ToByteArray())];
    }

    [Fact]
    public void Mutated_batches_never_throw_in_the_readers_or_the_validator()
    {
        var limits = IngestLimits.Default;
        Assert.True(Run(BatchSeeds(), input =>
        {
            if (!BatchView.TryParse(input, out var batch)) return;
            EventValidator.IsSiteKeyFormat(batch.SiteKey, limits);
            foreach (var raw in batch.GetEvents())
            {
                if (!EventView.TryParse(raw, out var e)) continue;
                EventValidator.Validate(e, limits);
                foreach (var _ in e.GetProperties()) { }
            }
        }, "batch readers + validator") > 0);
    }

    [Fact]
    public void Mutated_websocket_frames_never_throw_and_never_read_past_their_input()
    {
        var r = new Random(11);
        var seeds = new List<byte[]>();
        foreach (int length in new[] { 0, 5, 125, 126, 300, 70_000 })
        {
            foreach (byte opcode in new byte[] { 0x1, 0x2, 0x0, 0x8, 0x9, 0xA })
            {
                if (opcode >= 0x8 && length > 125) continue;
                var payload = Samples.RandomBytes(r, length);
                var frame = new byte[14 + length];
                int written = Write(frame, opcode, payload); // server frames (unmasked): the reader must refuse those too
                seeds.Add(frame[..written]);
                // A masked client frame: set the mask bit and insert a key after the length.
                var masked = new List<byte>(frame[..written]);
                int lengthBytes = length <= 125 ? 0 : length <= ushort.MaxValue ? 2 : 8;
                masked[1] |= 0x80;
                masked.InsertRange(2 + lengthBytes, Samples.RandomBytes(r, 4));
                seeds.Add([.. masked]);
            }
        }
        var control = new byte[125];
        Assert.True(Run([.. seeds], input =>
        {
            var sequence = new ReadOnlySequence<byte>(input);
            byte[] message = [];
            int messageLength = 0;
            while (true)
            {
                long before = sequence.Length;
                var status = TryRead(ref sequence, ref message, messageLength, 1 << 20, control, out var frame);
                if (status != ReadStatus.Frame) break;
                Assert.True(sequence.Length < before);
                if (frame.Opcode < 0x8) messageLength = frame.Fin ? 0 : messageLength + frame.PayloadLength;
            }
            if (message.Length > 0) ArrayPool<byte>.Shared.Return(message);
        }, "websocket frame reader") > 0);
    }
}
