using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Analytics.QueryService.Goals;

/// <summary>A request mistake that names the JSON field it is about (answered as 400 problem+json
/// with <c>field</c>), or another status (404, 409, 413) with the same shape.</summary>
public sealed class ApiProblemException(int status, string title, string detail, string? field = null) : Exception(detail)
{
    public int Status { get; } = status;
    public string Title { get; } = title;
    public string? Field { get; } = field;

    public IResult ToResult() => Results.Problem(statusCode: Status, title: Title, detail: Message,
        extensions: Field is null ? null : new Dictionary<string, object?> { ["field"] = Field });

    public static ApiProblemException Invalid(string field, string detail) => new(StatusCodes.Status400BadRequest, "Invalid request", $"{field}: {detail}", field);
}

/// <summary>
/// JSON request bodies of the goal, funnel and funnel-query endpoints: snake_case fields, unknown
/// fields refused (a misspelled field never silently changes an answer), at most 64 KB (413).
/// </summary>
public static class JsonBodies
{
    public const int MaxBytes = Http.JsonRequestBody.MaxBytes;

    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        UnmappedMemberHandling = System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow,
    };

    public static async Task<T> ReadAsync<T>(HttpContext context) where T : class
    {
        // A declared length over the limit was refused already (AcceptsJson); a chunked body is cut here.
        var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await context.Request.Body.ReadAsync(chunk, context.RequestAborted)) > 0)
        {
            if (buffer.Length + read > MaxBytes) throw TooLarge();
            buffer.Write(chunk, 0, read);
        }
        if (buffer.Length == 0) throw new ApiProblemException(StatusCodes.Status400BadRequest, "Invalid request", "The request needs a JSON body.");
        try
        {
            return JsonSerializer.Deserialize<T>(buffer.GetBuffer().AsSpan(0, (int)buffer.Length), Options)
                ?? throw new ApiProblemException(StatusCodes.Status400BadRequest, "Invalid request", "The body must be a JSON object.");
        }
        catch (JsonException e)
        {
            string field = FieldOf(e.Path);
            string detail = e.Message.Contains("could not be mapped", StringComparison.Ordinal) ? "unknown field."
                : "not valid here (wrong JSON type or malformed JSON).";
            throw new ApiProblemException(StatusCodes.Status400BadRequest, "Invalid request", field.Length == 0 ? "The body is not valid JSON." : $"{field}: {detail}", field.Length == 0 ? null : field);
        }
    }

    /// <summary>"$.steps[2]" → "steps[2]".</summary>
    private static string FieldOf(string? path) => path is null or "$" ? "" : path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path.TrimStart('$');

    private static ApiProblemException TooLarge() =>
        new(StatusCodes.Status413PayloadTooLarge, "Body too large", $"The request body is over {MaxBytes / 1024} KB.");
}
