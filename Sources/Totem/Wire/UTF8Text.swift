// Strict UTF-8 to String for the hot paths of the services and the control socket (the JSON
// string scans are DevclusterControl's JSONText).
//
// `String(validating:as:)` is generic over the encoding and runs unspecialized from the
// standard library: its generic-metadata lookups cost more than the validation for the short,
// mostly ASCII texts of events and requests. ASCII (the common case) needs no validation.

/// Strict UTF-8 decoding with an ASCII fast path.
package enum UTF8Text {
    /// The text of `bytes`, or `nil` if they are not valid UTF-8.
    package static func string(validating bytes: UnsafeBufferPointer<UInt8>) -> String? {
        if isASCII(bytes) { return String(decoding: bytes, as: UTF8.self) }
        return String(validating: bytes, as: UTF8.self)
    }

    /// The text of `bytes`, or `nil` if they are not valid UTF-8.
    package static func string(validating bytes: some Collection<UInt8>) -> String? {
        if let text = bytes.withContiguousStorageIfAvailable({ string(validating: $0) }) { return text }
        return Array(bytes).withUnsafeBufferPointer { string(validating: $0) }
    }

    /// Whether `bytes` are valid UTF-8 (strict, as `string(validating:)`), without building a
    /// String when they are ASCII.
    package static func isValid(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        isASCII(bytes) || String(validating: bytes, as: UTF8.self) != nil
    }

    /// Whether every byte is below 0x80: four eight-byte words ORed together per step (22 ns
    /// for 1 KiB; one word per step took 56 ns, a SIMD16 comparison 119 ns).
    package static func isASCII(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let raw = UnsafeRawPointer(base)
        let count = bytes.count
        let highs: UInt64 = 0x8080_8080_8080_8080
        var index = 0
        while index + 32 <= count {
            let word = raw.loadUnaligned(fromByteOffset: index, as: UInt64.self)
                | raw.loadUnaligned(fromByteOffset: index + 8, as: UInt64.self)
                | raw.loadUnaligned(fromByteOffset: index + 16, as: UInt64.self)
                | raw.loadUnaligned(fromByteOffset: index + 24, as: UInt64.self)
            if word & highs != 0 { return false }
            index += 32
        }
        while index + 8 <= count {
            if raw.loadUnaligned(fromByteOffset: index, as: UInt64.self) & highs != 0 { return false }
            index += 8
        }
        while index < count {
            if base[index] >= 0x80 { return false }
            index += 1
        }
        return true
    }
}
