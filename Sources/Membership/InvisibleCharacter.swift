// Characters no name may contain because a terminal or log shows them wrongly or not at all
// (controls, bidirectional overrides, zero-width and other format characters, separators), and
// how names are shown safely in messages. Owns the classification; each name type decides where
// it applies it.

/// A Unicode scalar refused in names (device names, mailboxes, hint keys), with its kind, so that
/// an error can say which code point and why: `U+202E (a bidirectional control character)`.
///
/// Refused: general categories Cc (C0 and C1 controls, DEL), Cf (format: bidirectional controls
/// such as U+202E, zero-width characters such as U+200B, U+200D and U+FEFF, soft hyphen, ...),
/// Zs (spaces, U+0020 and U+00A0 included), Zl and Zp (line and paragraph separators). Each can
/// make a name print as another one, or rewrite the rest of a CLI line or log line.
public struct InvisibleCharacter: Sendable, Equatable, CustomStringConvertible {
    /// What the character is, for the message.
    public enum Kind: Sendable, Equatable {
        /// General category Cc: C0 and C1 controls and DEL.
        case control
        /// U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069: reorder the text around them.
        case bidirectionalControl
        /// U+200B, U+200C, U+200D, U+2060, U+FEFF: print as nothing.
        case zeroWidth
        /// Any other general category Cf.
        case format
        /// General category Zs.
        case space
        /// General categories Zl and Zp.
        case separator

        var phrase: String {
            switch self {
            case .control: "a control character"
            case .bidirectionalControl: "a bidirectional control character"
            case .zeroWidth: "a zero-width character"
            case .format: "a format character"
            case .space: "a space character"
            case .separator: "a line or paragraph separator"
            }
        }
    }

    /// The character.
    public var scalar: Unicode.Scalar
    /// Its kind.
    public var kind: Kind

    /// Creates a value from its parts.
    public init(scalar: Unicode.Scalar, kind: Kind) {
        self.scalar = scalar
        self.kind = kind
    }

    /// The kind of `scalar` if names may not contain it, else `nil`.
    public static func kind(of scalar: Unicode.Scalar) -> Kind? {
        let value = scalar.value
        // Printable ASCII is by far the common case: answer it without the property tables.
        if value > 0x20 && value < 0x7F { return nil }
        switch value {
        case 0x061C, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return .bidirectionalControl
        case 0x200B, 0x200C, 0x200D, 0x2060, 0xFEFF: return .zeroWidth
        default: break
        }
        switch scalar.properties.generalCategory {
        case .control: return .control
        case .format: return .format
        case .spaceSeparator: return .space
        case .lineSeparator, .paragraphSeparator: return .separator
        default: return nil
        }
    }

    /// The first refused character of `text`, if any.
    public static func first(in text: String) -> InvisibleCharacter? {
        for scalar in text.unicodeScalars {
            if let kind = kind(of: scalar) { return InvisibleCharacter(scalar: scalar, kind: kind) }
        }
        return nil
    }

    /// `text` safe to print: every refused character but the plain space written as `\u{202E}`, and cut after
    /// `limit` characters (with `...`), so a hostile name can neither rewrite nor flood a line.
    public static func escaped(_ text: String, limit: Int = 100) -> String {
        var result = ""
        var count = 0
        for scalar in text.unicodeScalars {
            guard count < limit else { return result + "..." }
            count += 1
            if scalar != " ", kind(of: scalar) != nil {
                result += "\\u{" + hex(scalar.value) + "}"
            } else {
                result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    /// `U+202E`: at least four upper-case hex digits.
    public static func codePoint(_ scalar: Unicode.Scalar) -> String { "U+" + hex(scalar.value) }

    private static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }

    /// `U+202E (a bidirectional control character)`
    public var description: String { "\(Self.codePoint(scalar)) (\(kind.phrase))" }
}
