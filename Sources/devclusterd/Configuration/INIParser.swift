// Reads the INI dialect of devcluster.conf into sections and entries that remember their lines.
// It knows nothing about what a section or key means; `DaemonConfiguration` interprets them.

/// One `key = value` line of an INI file.
public struct INIEntry: Sendable, Equatable {
    /// The key as written, surrounding whitespace trimmed (hint keys such as `1234@sales` keep
    /// their spelling).
    public var key: String
    /// The key lower-cased: keys are case-insensitive, and lookups use this form.
    public var normalizedKey: String
    /// The value, surrounding whitespace and any trailing comment removed, `\;` and `\#` unescaped.
    public var value: String
    /// The 1-based line number of the entry.
    public var line: Int

    /// Creates an entry; `normalizedKey` is derived from `key`.
    public init(key: String, value: String, line: Int) {
        self.key = key
        self.normalizedKey = key.lowercased()
        self.value = value
        self.line = line
    }
}

/// One `[name]` header and the entries below it, up to the next header. A name may appear
/// several times (`[node]` once per node); each appearance is its own section.
public struct INISection: Sendable, Equatable {
    /// The name as written between the brackets, surrounding whitespace trimmed.
    public var name: String
    /// The 1-based line number of the header.
    public var line: Int
    /// The entries in file order; no two share a `normalizedKey`.
    public var entries: [INIEntry]

    /// Creates a section.
    public init(name: String, line: Int, entries: [INIEntry] = []) {
        self.name = name
        self.line = line
        self.entries = entries
    }

    /// The name lower-cased, for case-insensitive comparison.
    public var normalizedName: String { name.lowercased() }

    /// The entry whose key, compared case-insensitively, is `key`.
    public func entry(_ key: String) -> INIEntry? {
        let normalized = key.lowercased()
        return entries.first { $0.normalizedKey == normalized }
    }
}

/// A parsed INI file: its sections in file order.
public struct INIDocument: Sendable, Equatable {
    /// Every section header with its entries, in file order.
    public var sections: [INISection]

    /// Creates a document.
    public init(sections: [INISection] = []) { self.sections = sections }
}

/// A line the INI reader could not accept.
public struct INISyntaxError: Error, Sendable, Equatable {
    /// What is wrong with the line.
    public enum Kind: Sendable, Equatable {
        /// The line is neither a header, an entry, a comment nor blank.
        case malformedLine(String)
        /// An entry appears before the first section header.
        case keyOutsideSection(key: String)
        /// An entry has nothing before its `=`.
        case emptyKey(line: String)
        /// A header opens with `[` but has no `]`.
        case unterminatedSectionHeader(String)
        /// A header has nothing between its brackets.
        case emptySectionName
        /// Something other than a comment follows the `]` of a header.
        case textAfterSectionHeader(section: String, text: String)
        /// A key appears twice in one section instance.
        case duplicateKey(key: String, section: String, firstLine: Int)
    }

    /// The 1-based line number of the offending line.
    public var line: Int
    /// What is wrong with it.
    public var kind: Kind

    /// Creates a syntax error.
    public init(line: Int, kind: Kind) {
        self.line = line
        self.kind = kind
    }
}

/// The outcome of reading an INI text: every line that could be read, and every one that could not.
public struct INIParseResult: Sendable, Equatable {
    /// The sections and entries that were read.
    public var document: INIDocument
    /// The rejected lines, in line order; empty when the whole text was read.
    public var errors: [INISyntaxError]
}

/// Reads the INI dialect of devcluster.conf.
///
/// - `[section]` headers; a name may repeat, each appearance starts a new section.
/// - `key = value` entries (split at the first `=`); keys are case-insensitive.
/// - Comments start with `;` or `#` anywhere on a line; `\;` and `\#` stand for the characters.
/// - Blank lines are ignored and surrounding whitespace is trimmed.
/// - Lines end in LF, CRLF or CR; a UTF-8 byte-order mark at the start is skipped.
///
/// The reader never stops at the first bad line: it reports every one, so a user can fix them all
/// at once.
public enum INIParser {
    /// Reads `text`, collecting every syntax error with its line number.
    public static func parse(_ text: String) -> INIParseResult {
        var document = INIDocument()
        var errors: [INISyntaxError] = []
        // After a broken header, entries belong to no section; they are skipped silently so that
        // one typo does not produce an error for every line below it.
        var insideBrokenSection = false
        for (index, rawLine) in lines(of: text).enumerated() {
            let lineNumber = index + 1
            let content = trimmed(removingComment(from: rawLine))
            if content.isEmpty { continue }
            if content.hasPrefix("[") {
                switch readHeader(content, line: lineNumber) {
                case .success(let section):
                    document.sections.append(section)
                    insideBrokenSection = false
                case .failure(let error):
                    errors.append(error)
                    insideBrokenSection = true
                }
                continue
            }
            guard let equals = content.firstIndex(of: "=") else {
                errors.append(INISyntaxError(line: lineNumber, kind: .malformedLine(content)))
                continue
            }
            let key = trimmed(content[..<equals])
            let value = trimmed(content[content.index(after: equals)...])
            if key.isEmpty {
                errors.append(INISyntaxError(line: lineNumber, kind: .emptyKey(line: content)))
                continue
            }
            if insideBrokenSection { continue }
            guard var section = document.sections.popLast() else {
                errors.append(INISyntaxError(line: lineNumber, kind: .keyOutsideSection(key: key)))
                continue
            }
            let entry = INIEntry(key: key, value: value, line: lineNumber)
            if let first = section.entries.first(where: { $0.normalizedKey == entry.normalizedKey }) {
                errors.append(INISyntaxError(
                    line: lineNumber,
                    kind: .duplicateKey(key: key, section: section.name, firstLine: first.line)))
            } else {
                section.entries.append(entry)
            }
            document.sections.append(section)
        }
        return INIParseResult(document: document, errors: errors)
    }

    /// Splits at LF, CRLF and CR. Swift treats CRLF as one `Character`, so all three are matched.
    private static func lines(of text: String) -> [Substring] {
        var body = Substring(text)
        if body.first == "\u{FEFF}" { body = body.dropFirst() }
        return body.split(omittingEmptySubsequences: false) { $0 == "\n" || $0 == "\r\n" || $0 == "\r" }
    }

    /// The line up to its first unescaped `;` or `#`, with `\;` and `\#` unescaped.
    private static func removingComment(from line: Substring) -> String {
        var result = ""
        var iterator = line.makeIterator()
        while let character = iterator.next() {
            if character == ";" || character == "#" { break }
            if character == "\\" {
                guard let next = iterator.next() else {
                    result.append(character)
                    break
                }
                if next != ";" && next != "#" { result.append(character) }
                result.append(next)
                continue
            }
            result.append(character)
        }
        return result
    }

    private static func readHeader(_ content: String, line: Int) -> Result<INISection, INISyntaxError> {
        guard let close = content.firstIndex(of: "]") else {
            return .failure(INISyntaxError(line: line, kind: .unterminatedSectionHeader(content)))
        }
        let name = trimmed(content[content.index(after: content.startIndex)..<close])
        let rest = trimmed(content[content.index(after: close)...])
        guard !name.isEmpty else {
            return .failure(INISyntaxError(line: line, kind: .emptySectionName))
        }
        guard rest.isEmpty else {
            return .failure(INISyntaxError(line: line, kind: .textAfterSectionHeader(section: name, text: rest)))
        }
        return .success(INISection(name: name, line: line))
    }

    static func trimmed<Text: StringProtocol>(_ text: Text) -> String {
        guard let first = text.firstIndex(where: { !$0.isWhitespace }),
              let last = text.lastIndex(where: { !$0.isWhitespace })
        else { return "" }
        return String(text[first...last])
    }
}
