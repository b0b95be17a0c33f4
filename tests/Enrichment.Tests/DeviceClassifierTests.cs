using Analytics.Enrichment.UserAgents;

namespace Analytics.Enrichment.Tests;

/// <summary>
/// Device types per the rules table of docs/enrichment.md. Devices are identified by uap-core's
/// own answer (test_device.yaml's family) where the data set names the kind of device; the rest
/// are real user agents of well-known devices with the type the table gives them.
/// </summary>
public class DeviceClassifierTests
{
    private static UserAgentParser Parser => SharedParsers.UserAgents;

    private static string Classify(string ua, ClientHints hints = default, uint width = 0) =>
        DeviceClassifier.Classify(ua, Parser.Parse(ua), hints == default ? ClientHints.None : hints, width);

    [Theory]
    [InlineData("iPad", DeviceTypes.Tablet)]
    [InlineData("iPhone", DeviceTypes.Mobile)]
    [InlineData("iPod", DeviceTypes.Mobile)]
    [InlineData("Generic Smartphone", DeviceTypes.Mobile)]
    [InlineData("Generic Feature Phone", DeviceTypes.Mobile)]
    [InlineData("Generic Tablet", DeviceTypes.Tablet)]
    [InlineData("Kindle Fire", DeviceTypes.Tablet)]
    [InlineData("HbbTV", DeviceTypes.Tv)]
    [InlineData("NetCast.TV", DeviceTypes.Tv)]
    [InlineData("AppleTV", DeviceTypes.Tv)]
    [InlineData("PlayStation 4", DeviceTypes.Console)]
    [InlineData("Nintendo Wii U", DeviceTypes.Console)]
    [InlineData("Xbox", DeviceTypes.Console)]
    [InlineData("Apple Watch", DeviceTypes.Wearable)]
    [InlineData("Spider", DeviceTypes.Bot)]
    public void Devices_uap_core_names_get_their_type(string uapFamily, string expected)
    {
        var uas = UapTestCases.Load("test_device.yaml").Where(c => c["family"] == uapFamily).Select(c => c["user_agent_string"]!).ToList();
        Assert.NotEmpty(uas);
        var wrong = uas.Where(ua => Classify(ua) != expected).Select(ua => $"{Classify(ua)}: {ua}").ToList();
        Assert.True(wrong.Count == 0, $"{wrong.Count}/{uas.Count} {uapFamily} not {expected}:\n{string.Join("\n", wrong)}");
    }

    [Theory]
    // Desktops.
    [InlineData("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", DeviceTypes.Desktop)]
    [InlineData("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", DeviceTypes.Desktop)]
    [InlineData("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", DeviceTypes.Desktop)]
    [InlineData("Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.0; Tablet PC 2.0)", DeviceTypes.Desktop)]
    // Phones: Android's "Mobile" token, also in Chrome's reduced user agent ("Android 10; K").
    [InlineData("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", DeviceTypes.Mobile)]
    [InlineData("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", DeviceTypes.Mobile)]
    [InlineData("Mozilla/5.0 (Mobile; LYF/F30C/LYF_F30C-000-01-23-130718; Android; rv:48.0) Gecko/48.0 Firefox/48.0 KAIOS/2.5", DeviceTypes.Mobile)]
    // Tablets: no "Mobile" on Android, iPads in mobile mode.
    [InlineData("Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", DeviceTypes.Tablet)]
    [InlineData("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", DeviceTypes.Tablet)]
    [InlineData("Mozilla/5.0 (Android 14; Tablet; rv:133.0) Gecko/133.0 Firefox/133.0", DeviceTypes.Tablet)]
    // TVs, consoles, headsets, watches.
    [InlineData("Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36", DeviceTypes.Tv)]
    [InlineData("Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/87.0.4280.88 Safari/537.36 WebAppManager", DeviceTypes.Tv)]
    [InlineData("Mozilla/5.0 (Linux; Android 9; AFTKA Build/PS7633) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36", DeviceTypes.Tv)]
    [InlineData("Mozilla/5.0 (Linux; Android 12; BRAVIA 4K VH2 Build/STT1.211025.001.Z4) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/110.0 Safari/537.36", DeviceTypes.Tv)]
    [InlineData("Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.0 Safari/605.1.15", DeviceTypes.Console)]
    [InlineData("Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox Series X) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/48.0.2564.82 Safari/537.36 Edge/20.02", DeviceTypes.Console)]
    [InlineData("Mozilla/5.0 (Nintendo Switch; WifiWebAuthApplet) AppleWebKit/606.4 (KHTML, like Gecko) NF/6.0.1.15.4 NintendoBrowser/5.1.0.20393", DeviceTypes.Console)]
    [InlineData("Mozilla/5.0 (X11; Linux x86_64; Quest 3) AppleWebKit/537.36 (KHTML, like Gecko) OculusBrowser/33.0.0.0 SamsungBrowser/4.0 Chrome/126.0.0.0 Safari/537.36", DeviceTypes.Xr)]
    [InlineData("Mozilla/5.0 (Linux; Android 11; SAMSUNG SM-R890) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/2.0 Chrome/87.0.4280.141 Mobile Safari/537.36", DeviceTypes.Wearable)]
    public void Real_user_agents_without_hints_get_the_type_of_their_device(string ua, string expected) => Assert.Equal(expected, Classify(ua));

    private const string MacSafari = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15";

    [Theory]
    [InlineData(0u, DeviceTypes.Desktop)]
    [InlineData(820u, DeviceTypes.Tablet)]   // iPad Air in desktop mode
    [InlineData(1024u, DeviceTypes.Tablet)]  // iPad Pro 12.9" in desktop mode
    [InlineData(1280u, DeviceTypes.Desktop)] // MacBook Air at its smallest scaling
    [InlineData(1512u, DeviceTypes.Desktop)]
    public void A_mac_user_agent_is_an_ipad_in_desktop_mode_only_on_an_ipad_sized_screen(uint width, string expected) =>
        Assert.Equal(expected, Classify(MacSafari, width: width));

    private const string ReducedAndroidDesktopMode = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

    [Theory]
    [InlineData("?1", "\"Android\"", "", 0u, DeviceTypes.Mobile)]        // hints say phone
    [InlineData("?0", "\"Android\"", "", 412u, DeviceTypes.Mobile)]      // phone in desktop mode
    [InlineData("?0", "\"Android\"", "", 800u, DeviceTypes.Tablet)]      // tablet (desktop UA)
    [InlineData("?0", "\"Linux\"", "", 412u, DeviceTypes.Desktop)]       // a real Linux desktop
    [InlineData("?0", "\"Android\"", "\"Tablet\"", 412u, DeviceTypes.Tablet)] // form factor wins
    [InlineData("", "", "\"XR\"", 0u, DeviceTypes.Xr)]
    [InlineData("", "", "\"Automotive\", \"Desktop\"", 0u, DeviceTypes.Desktop)] // first known factor
    [InlineData("", "", "", 412u, DeviceTypes.Desktop)]                  // no hints: the UA says Linux desktop
    public void Client_hints_decide_before_the_user_agent_where_they_speak(string mobile, string platform, string formFactors, uint width, string expected) =>
        Assert.Equal(expected, Classify(ReducedAndroidDesktopMode, new ClientHints(mobile, platform, "", formFactors), width));

    [Theory]
    [InlineData(0u, DeviceTypes.Unknown)]
    [InlineData(375u, DeviceTypes.Mobile)]
    [InlineData(768u, DeviceTypes.Tablet)]
    [InlineData(1920u, DeviceTypes.Desktop)]
    public void Screen_width_decides_only_when_nothing_else_is_known(uint width, string expected) =>
        Assert.Equal(expected, Classify("SomeApp/1.0", width: width));

    [Fact]
    public void A_tv_user_agent_stays_a_tv_whatever_the_mobile_hint_says() =>
        Assert.Equal(DeviceTypes.Tv, Classify("Mozilla/5.0 (SMART-TV; LINUX; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36",
            new ClientHints("?1", "\"Android\"", "", ""), 1920));
}
