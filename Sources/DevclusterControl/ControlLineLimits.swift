// How long a control-protocol request line may be: made from the largest event payload, so that
// the documented maximum always fits (docs/control-protocol.md, "Limits").

import EventService

/// The request line limit of the control protocol.
public enum ControlLineLimits {
    /// Longest request line (without its newline). Longer request lines are answered with
    /// `line_too_long` and skipped up to the next newline; the connection stays usable.
    ///
    /// Made from the largest request: an `event_publish` of the largest payload
    /// (`EventLimits.payloadBytes`) as `payload_base64` (4 characters per 3 bytes), plus
    /// `envelopeBytes` for the rest (the largest attributes take 35,008 bytes unescaped).
    public static let maximumLineBytes = base64Length(of: EventLimits.payloadBytes) + envelopeBytes
    /// Room in a request line for everything but an event's Base64 payload.
    public static let envelopeBytes = 64 * 1024

    /// Characters of the Base64 form of `count` bytes, with padding.
    public static func base64Length(of count: Int) -> Int { (count + 2) / 3 * 4 }
}
