// The Prometheus text exposition format, version 0.0.4: `# HELP` and `# TYPE` lines, then one
// line per sample, `name{label="value"} number`. Builds bytes only; what the numbers are is
// MetricsReport's business.

/// A Prometheus text-format document under construction.
///
/// Every family is written whole (HELP, TYPE, its samples) by one call, so a family's samples are
/// never split, and no family name can appear twice (that is a bug here: it traps).
struct MetricsText {
    /// The content type of the format (what `promtool` and Prometheus expect).
    static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    enum Kind: String {
        case counter, gauge, histogram
    }

    /// One sample: labels in order, and its value.
    struct Sample {
        var labels: [(String, String)]
        var value: Value

        init(_ labels: [(String, String)] = [], _ value: Value) {
            self.labels = labels
            self.value = value
        }
    }

    /// A sample value: counts stay exact integers, durations are seconds.
    enum Value {
        case integer(Int)
        case seconds(Duration)
        case number(Double)
    }

    private(set) var bytes: [UInt8] = []
    private var families: Set<String> = []

    /// The document's text.
    var text: String { String(decoding: bytes, as: UTF8.self) }

    /// A family of one kind with its samples (a family with no samples still gets its HELP and
    /// TYPE, which says the metric exists).
    mutating func family(_ name: String, _ kind: Kind, help: String, _ samples: [Sample]) {
        precondition(Self.isValidName(name), "invalid metric name \(name)")
        precondition(families.insert(name).inserted, "metric family \(name) written twice")
        append("# HELP \(name) \(Self.escapedHelp(help))\n# TYPE \(name) \(kind.rawValue)\n")
        for sample in samples { line(name, sample.labels, sample.value) }
    }

    /// A family with one unlabelled sample.
    mutating func single(_ name: String, _ kind: Kind, help: String, _ value: Value) {
        family(name, kind, help: help, [Sample([], value)])
    }

    /// A histogram: cumulative `_bucket` lines for `bounds` (seconds) and `+Inf`, `_sum`, `_count`.
    ///
    /// - Parameters:
    ///   - bucketCounts: per bucket, not cumulative; one more than `bounds` (the last is above them all).
    mutating func histogram(_ name: String, help: String, bounds: [Double], bucketCounts: [Int], sumSeconds: Double, count: Int) {
        precondition(bucketCounts.count == bounds.count + 1, "\(name): \(bucketCounts.count) buckets for \(bounds.count) bounds")
        family(name, .histogram, help: help, [])
        var cumulative = 0
        for (index, bound) in bounds.enumerated() {
            cumulative += bucketCounts[index]
            line(name + "_bucket", [("le", Self.format(bound))], .integer(cumulative))
        }
        cumulative += bucketCounts[bounds.count]
        line(name + "_bucket", [("le", "+Inf")], .integer(cumulative))
        line(name + "_sum", [], .number(sumSeconds))
        line(name + "_count", [], .integer(count))
    }

    private mutating func line(_ name: String, _ labels: [(String, String)], _ value: Value) {
        var text = name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(Self.escapedLabelValue($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " "
        switch value {
        case .integer(let integer): text += String(integer)
        case .seconds(let duration): text += Self.format(Double(duration.totalNanoseconds) / 1e9)
        case .number(let number): text += Self.format(number)
        }
        text += "\n"
        append(text)
    }

    private mutating func append(_ text: String) {
        bytes.append(contentsOf: text.utf8)
    }

    // MARK: The format's rules

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    static func isValidName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(0x30...0x39).contains(first) else { return false }
        return name.utf8.allSatisfy { byte in
            (0x61...0x7A).contains(byte) || (0x41...0x5A).contains(byte) || (0x30...0x39).contains(byte) || byte == 0x5F || byte == 0x3A
        }
    }

    /// A number as the format writes it: integers without a fraction, `+Inf`, `-Inf`, `NaN`.
    static func format(_ number: Double) -> String {
        if number.isNaN { return "NaN" }
        if number.isInfinite { return number > 0 ? "+Inf" : "-Inf" }
        if number == number.rounded(), abs(number) < 1e15 { return String(Int64(number)) }
        return "\(number)"
    }

    /// HELP text: backslash and line feed escaped.
    static func escapedHelp(_ text: String) -> String {
        var result = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }

    /// A label value: backslash, double quote and line feed escaped.
    static func escapedLabelValue(_ text: String) -> String {
        var result = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": result += "\\\\"
            case "\"": result += "\\\""
            case "\n": result += "\\n"
            default: result.unicodeScalars.append(scalar)
            }
        }
        return result
    }
}
