using Analytics.Contracts.V1;
using Analytics.FastIngest.Protocol;
using Analytics.FastIngest.Validation;
using Google.Protobuf;

namespace Analytics.FastIngest.Tests;

public class EventValidatorTests
{
    private static RejectionReason Validate(Event e, IngestLimits? limits = null)
    {
        var bytes = e.ToByteArray();
        Assert.True(EventView.TryParse(bytes, out var view));
        return EventValidator.Validate(view, limits ?? IngestLimits.Default);
    }

    private static Event Valid() => Samples.ValidPageview();

    [Fact]
    public void A_complete_valid_event_passes()
    {
        var e = Valid();
        e.Referrer = "https://www.google.com/";
        e.RevenueMicros = 12_340_000;
        e.Currency = "EUR";
        e.ScreenWidth = 1920;
        e.EngagementMs = 5000;
        e.ClientTimeMs = 1_764_000_000_000;
        e.Props.Add(new Property { Key = "plan", Value = "pro" });
        Assert.Equal(RejectionReason.Unspecified, Validate(e));
        // The last millisecond the store holds (2299-12-31T23:59:59.999Z) is a time still.
        e.ClientTimeMs = new DateTimeOffset(2299, 12, 31, 23, 59, 59, 999, TimeSpan.Zero).ToUnixTimeMilliseconds();
        Assert.Equal(RejectionReason.Unspecified, Validate(e));
    }

    public static TheoryData<string, RejectionReason> Cases => new()
    {
        { "id-short", RejectionReason.InvalidId },
        { "id-missing", RejectionReason.InvalidId },
        { "name-missing", RejectionReason.NameMissing },
        { "name-long", RejectionReason.NameTooLong },
        { "name-control", RejectionReason.InvalidString },
        { "url-missing", RejectionReason.UrlMissing },
        { "url-long", RejectionReason.UrlTooLong },
        { "url-relative", RejectionReason.UrlInvalid },
        { "url-no-host", RejectionReason.UrlInvalid },
        { "url-javascript", RejectionReason.UrlInvalid },
        { "referrer-long", RejectionReason.ReferrerTooLong },
        { "referrer-invalid", RejectionReason.ReferrerInvalid },
        { "props-too-many", RejectionReason.TooManyProps },
        { "prop-key-empty", RejectionReason.PropKeyInvalid },
        { "prop-key-long", RejectionReason.PropKeyInvalid },
        { "prop-key-duplicate", RejectionReason.PropKeyInvalid },
        { "prop-value-long", RejectionReason.PropValueTooLong },
        { "revenue-no-currency", RejectionReason.CurrencyInvalid },
        { "currency-lowercase", RejectionReason.CurrencyInvalid },
        { "revenue-negative", RejectionReason.RevenueOutOfRange },
        { "revenue-over-max", RejectionReason.RevenueOutOfRange },
        { "revenue-int64-max", RejectionReason.RevenueOutOfRange },
        { "screen-wide", RejectionReason.ScreenWidthOutOfRange },
        { "engagement-long", RejectionReason.EngagementOutOfRange },
        { "client-time-negative", RejectionReason.ClientTimeInvalid },
        { "client-time-after-2299", RejectionReason.ClientTimeInvalid },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Each_broken_rule_is_reported_with_its_reason(string rule, RejectionReason expected)
    {
        var e = Valid();
        switch (rule)
        {
            case "id-short": e.Id = ByteString.CopyFrom(new byte[15]); break;
            case "id-missing": e.Id = ByteString.Empty; break;
            case "name-missing": e.Name = ""; break;
            case "name-long": e.Name = new string('n', 129); break;
            case "name-control": e.Name = "bad\u0001name"; break;
            case "url-missing": e.Url = ""; break;
            case "url-long": e.Url = "https://x.example/" + new string('p', 2048); break;
            case "url-relative": e.Url = "/products/1"; break;
            case "url-no-host": e.Url = "https:///path"; break;
            case "url-javascript": e.Url = "javascript:alert(1)"; break;
            case "referrer-long": e.Referrer = "https://r.example/" + new string('p', 2048); break;
            case "referrer-invalid": e.Referrer = "android-app://com.example"; break;
            case "props-too-many": for (int i = 0; i < 31; i++) e.Props.Add(new Property { Key = "k" + i, Value = "v" }); break;
            case "prop-key-empty": e.Props.Add(new Property { Key = "", Value = "v" }); break;
            case "prop-key-long": e.Props.Add(new Property { Key = new string('k', 129), Value = "v" }); break;
            case "prop-key-duplicate": e.Props.Add(new Property { Key = "a", Value = "1" }); e.Props.Add(new Property { Key = "a", Value = "2" }); break;
            case "prop-value-long": e.Props.Add(new Property { Key = "k", Value = new string('v', 513) }); break;
            case "revenue-no-currency": e.RevenueMicros = 1; break;
            case "currency-lowercase": e.RevenueMicros = 1; e.Currency = "eur"; break;
            case "revenue-negative": e.RevenueMicros = -1; e.Currency = "EUR"; break;
            case "revenue-over-max": e.RevenueMicros = 1_000_000_000_000_001; e.Currency = "EUR"; break;
            case "revenue-int64-max": e.RevenueMicros = long.MaxValue; e.Currency = "EUR"; break;
            case "screen-wide": e.ScreenWidth = 20_001; break;
            case "engagement-long": e.EngagementMs = 86_400_001; break;
            case "client-time-negative": e.ClientTimeMs = -1; break;
            // One millisecond past 2299-12-31T23:59:59.999Z, the end of ClickHouse's DateTime64 range.
            case "client-time-after-2299": e.ClientTimeMs = new DateTimeOffset(2300, 1, 1, 0, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds(); break;
        }
        Assert.Equal(expected, Validate(e));
    }

    [Fact]
    public void Limits_are_inclusive_at_the_boundary()
    {
        var e = Valid();
        e.Name = new string('n', 128);
        e.Url = "https://x.example/" + new string('p', 2048 - "https://x.example/".Length);
        // 30 unique keys of exactly 128 bytes, values of exactly 512 bytes.
        for (int i = 0; i < 30; i++) e.Props.Add(new Property { Key = i.ToString("D3") + new string('k', 125), Value = new string('v', 512) });
        e.ScreenWidth = 20_000;
        e.RevenueMicros = 1_000_000_000_000_000;
        e.Currency = "EUR";
        e.EngagementMs = 86_400_000;
        Assert.Equal(RejectionReason.Unspecified, Validate(e));
    }

    [Fact]
    public void Custom_events_need_no_url()
    {
        var e = Valid();
        e.Name = "signup";
        e.Url = "";
        Assert.Equal(RejectionReason.Unspecified, Validate(e));
    }

    [Fact]
    public void Invalid_utf8_in_any_string_is_rejected()
    {
        // A property value with a truncated two-byte sequence; Google.Protobuf cannot even
        // build such a message, so write the bytes by hand.
        byte[] bad = [0x66, 0xC3, 0x28];
        var stream = new MemoryStream();
        stream.Write(Valid().ToByteArray());
        var prop = new MemoryStream();
        var po = new CodedOutputStream(prop);
        po.WriteTag(1, WireFormat.WireType.LengthDelimited); po.WriteBytes(ByteString.CopyFromUtf8("k"));
        po.WriteTag(2, WireFormat.WireType.LengthDelimited); po.WriteBytes(ByteString.CopyFrom(bad));
        po.Flush();
        var o = new CodedOutputStream(stream);
        o.WriteTag(6, WireFormat.WireType.LengthDelimited); o.WriteBytes(ByteString.CopyFrom(prop.ToArray()));
        o.Flush();
        Assert.True(EventView.TryParse(stream.ToArray(), out var view));
        Assert.Equal(RejectionReason.InvalidString, EventValidator.Validate(view, IngestLimits.Default));
    }

    [Theory]
    [InlineData("abc", true)]
    [InlineData("A-b_9", true)]
    [InlineData("", false)]
    [InlineData("has space", false)]
    [InlineData("ключ", false)]
    public void Site_keys_are_short_ascii_tokens(string key, bool valid)
    {
        Assert.Equal(valid, EventValidator.IsSiteKeyFormat(System.Text.Encoding.UTF8.GetBytes(key), IngestLimits.Default));
        Assert.False(EventValidator.IsSiteKeyFormat(new byte[65].Select(_ => (byte)'a').ToArray(), IngestLimits.Default));
    }
}
