using System.Net;
using System.Net.Sockets;
using MaxMind.Db;

namespace Analytics.Enrichment.Geo;

/// <summary>Where a network is: ISO 3166-1 country ("DE"), ISO 3166-2 region ("DE-BE"), city in
/// English ("Berlin"). Empty strings where the database does not know.</summary>
public readonly record struct GeoLocation(string Country, string Region, string City)
{
    public static readonly GeoLocation Unknown = new("", "", "");
}

/// <summary>
/// Country, region and city of a stored address prefix, from a MaxMind GeoIP2/GeoLite2 Country
/// or City database (MMDB), read with MaxMind.Db (the reader MaxMind.GeoIP2 is built on).
/// Only country.iso_code, subdivisions[0].iso_code and city.names.en are decoded: GeoIP2's
/// DatabaseReader.City() decodes the whole record with every language's names, which measured
/// 8x the allocation (6.8 KB vs 0.9 KB) and 1.6x the time of this per uncached lookup.
///
/// Contract: the input is the prefix FastIngest stores ("203.0.113.0/24", "2001:db8:1::/48"),
/// never a full address, so a newer database can be applied to history by reprocessing. The
/// answer is the database's record for the prefix's first address (the network address): a /24
/// stands for all 256 addresses it holds. MaxMind's networks are rarely smaller than a /24 for
/// IPv4 (and a /48 is a single site for IPv6), so country and region are almost always those of
/// the whole prefix; the city can differ where a provider splits a /24 between towns, which is
/// the price of never keeping full addresses. Private, reserved, unknown networks and malformed
/// prefixes give empty strings (GeoLocation.Unknown). Thread-safe (the MaxMind reader is); answers
/// are cached per prefix string, bounded, and a cached answer allocates nothing.
/// </summary>
public sealed class GeoLocator : IDisposable
{
    /// <summary>Distinct prefixes kept: ~100 bytes each, so the default is a few MB. A day of a
    /// busy site sees far fewer /24s than this among its returning visitors.</summary>
    public const int DefaultCacheCapacity = 65_536;

    private readonly Reader _reader;
    private readonly bool _hasIPv6;
    private readonly BoundedCache<GeoLocation> _cache;

    private GeoLocator(Reader reader, bool hasIPv6, int cacheCapacity)
    {
        _reader = reader;
        _hasIPv6 = hasIPv6;
        _cache = new BoundedCache<GeoLocation>(cacheCapacity);
    }

    /// <summary>"GeoLite2-City", "GeoIP2-Country", …: the database's own type name.</summary>
    public string DatabaseType => _reader.Metadata.DatabaseType;

    /// <summary>When the database was built (its metadata's build epoch).</summary>
    public DateTimeOffset BuildDate => new(_reader.Metadata.BuildDate, TimeSpan.Zero);

    /// <summary>
    /// Opens a GeoIP2/GeoLite2 Country or City database. Throws GeoDatabaseException with one
    /// line saying what is wrong when the file is missing, not an MMDB, or of another type
    /// (ASN, ISP, …), so a start-up mistake ends with a clear message.
    /// </summary>
    public static GeoLocator Open(string path, int cacheCapacity = DefaultCacheCapacity)
    {
        if (!File.Exists(path)) throw new GeoDatabaseException($"GeoIP database not found: {path}");
        Reader reader;
        try
        {
            // Memory-mapped: the OS shares and pages the file; nothing is copied onto the heap.
            reader = new Reader(path, FileAccessMode.MemoryMapped);
        }
        catch (InvalidDatabaseException e)
        {
            throw new GeoDatabaseException($"Not a MaxMind database ({e.Message}): {path}");
        }
        string type = reader.Metadata.DatabaseType;
        bool isCity = type.Contains("City", StringComparison.Ordinal) || type.Contains("Enterprise", StringComparison.Ordinal);
        bool isCountry = type.Contains("Country", StringComparison.Ordinal);
        if (!isCity && !isCountry)
        {
            reader.Dispose();
            throw new GeoDatabaseException($"GeoIP database {path} is of type \"{type}\"; a GeoIP2/GeoLite2 Country or City database is needed.");
        }
        return new GeoLocator(reader, reader.Metadata.IPVersion == 6, cacheCapacity);
    }

    /// <summary>Country, region and city for a stored prefix such as "203.0.113.0/24".</summary>
    public GeoLocation Locate(string ipPrefix)
    {
        bool hit = _cache.TryGet(ipPrefix, out var cached);
        EnrichmentTelemetry.Geo(hit);
        if (hit) return cached;
        var located = Lookup(ipPrefix);
        _cache.Add(ipPrefix, located);
        return located;
    }

    private GeoLocation Lookup(string ipPrefix)
    {
        if (!TryNetworkAddress(ipPrefix, out var address)) return GeoLocation.Unknown;
        if (address.AddressFamily == AddressFamily.InterNetworkV6 && !_hasIPv6) return GeoLocation.Unknown;
        var record = _reader.Find<GeoRecord>(address);
        if (record is null) return GeoLocation.Unknown;
        string country = record.Country?.IsoCode ?? "";
        string subdivision = record.Subdivisions is { Count: > 0 } subdivisions ? subdivisions[0].IsoCode ?? "" : "";
        return new GeoLocation(
            country,
            country.Length > 0 && subdivision.Length > 0 ? country + "-" + subdivision : "",
            record.City?.Names?.English ?? "");
    }

    /// <summary>The first address of "a.b.c.0/24" or "2001:db8:1::/48"; a bare address is taken
    /// as it is. False for anything else.</summary>
    private static bool TryNetworkAddress(string ipPrefix, out IPAddress address)
    {
        address = IPAddress.None;
        if (ipPrefix.Length == 0) return false;
        int slash = ipPrefix.IndexOf('/');
        if (slash >= 0)
        {
            // IPNetwork.TryParse masks host bits away; a "prefix" with host bits set is not
            // what FastIngest stores, so refuse it rather than look up a full address.
            if (!IPNetwork.TryParse(ipPrefix, out var network)
                || !IPAddress.TryParse(ipPrefix.AsSpan(0, slash), out var written)
                || !written.Equals(network.BaseAddress)) return false;
            address = network.BaseAddress;
            return true;
        }
        if (!IPAddress.TryParse(ipPrefix, out var parsed)) return false;
        address = parsed.IsIPv4MappedToIPv6 ? parsed.MapToIPv4() : parsed;
        return true;
    }

    /// <summary>Prefixes currently cached (tests check the bound).</summary>
    internal int CachedPrefixes => _cache.Count;

    public void Dispose() => _reader.Dispose();
}

/// <summary>A GeoIP database that cannot be used; the message is one line for the operator.</summary>
public sealed class GeoDatabaseException(string message) : Exception(message);

// The parts of a GeoIP2/GeoLite2 Country or City record we keep, in MaxMind's layout
// (country.iso_code, subdivisions[].iso_code, city.names.en). Decoding only these, rather than
// GeoIP2's full CityResponse with every language's names, makes an uncached lookup several
// times cheaper (GeoReferrerBenchmarks).

internal sealed class GeoRecord
{
    [Constructor]
    public GeoRecord([MapKey("country")] GeoPlace? country = null, [MapKey("subdivisions")] List<GeoPlace>? subdivisions = null, [MapKey("city")] GeoPlace? city = null)
    {
        Country = country;
        Subdivisions = subdivisions;
        City = city;
    }

    public GeoPlace? Country { get; }
    public List<GeoPlace>? Subdivisions { get; }
    public GeoPlace? City { get; }
}

internal sealed class GeoPlace
{
    [Constructor]
    public GeoPlace([MapKey("iso_code")] string? isoCode = null, [MapKey("names")] GeoNames? names = null)
    {
        IsoCode = isoCode;
        Names = names;
    }

    public string? IsoCode { get; }
    public GeoNames? Names { get; }
}

internal sealed class GeoNames
{
    [Constructor]
    public GeoNames([MapKey("en")] string? english = null) => English = english;

    public string? English { get; }
}
