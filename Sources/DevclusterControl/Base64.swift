// Base64 (RFC 4648 section 4, standard alphabet, padded) for binary event payloads on the
// control socket (`payload_base64`), where JSON strings can only carry text.

/// Standard padded Base64.
public enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// The value of each alphabet byte, 0xFF for bytes outside it.
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, byte) in alphabet.enumerated() { table[Int(byte)] = UInt8(index) }
        return table
    }()

    /// Encodes `bytes` with `=` padding.
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        var output = [UInt8]()
        output.reserveCapacity((bytes.count + 2) / 3 * 4)
        var iterator = bytes.makeIterator()
        while let first = iterator.next() {
            let second = iterator.next()
            let third = iterator.next()
            let group = UInt32(first) << 16 | UInt32(second ?? 0) << 8 | UInt32(third ?? 0)
            output.append(alphabet[Int(group >> 18 & 0x3F)])
            output.append(alphabet[Int(group >> 12 & 0x3F)])
            output.append(second == nil ? 0x3D : alphabet[Int(group >> 6 & 0x3F)])
            output.append(third == nil ? 0x3D : alphabet[Int(group & 0x3F)])
        }
        return String(decoding: output, as: UTF8.self)
    }

    /// Why a text is not Base64.
    public enum DecodeError: Error, Equatable, CustomStringConvertible {
        /// The length is not a multiple of 4.
        case length(Int)
        /// A byte outside the alphabet (or misplaced padding) at this offset.
        case invalidCharacter(offset: Int)
        /// The bits after the last byte are not zero (a non-canonical encoding).
        case nonCanonical

        public var description: String {
            switch self {
            case .length(let count): "not Base64: \(count) characters, a multiple of 4 is needed"
            case .invalidCharacter(let offset): "not Base64: invalid character at offset \(offset)"
            case .nonCanonical: "not Base64: the last group has non-zero padding bits"
            }
        }
    }

    /// Decodes a padded Base64 text strictly (no whitespace, canonical padding bits).
    public static func decode(_ text: String) throws(DecodeError) -> [UInt8] {
        let input = Array(text.utf8)
        guard input.count % 4 == 0 else { throw .length(input.count) }
        var output = [UInt8]()
        output.reserveCapacity(input.count / 4 * 3)
        var index = 0
        while index < input.count {
            let isLast = index + 4 == input.count
            var group: UInt32 = 0
            var padding = 0
            for offset in 0..<4 {
                let byte = input[index + offset]
                if byte == 0x3D, isLast, offset >= 2, offset == 3 || input[index + 3] == 0x3D {
                    padding += 1
                    group <<= 6
                    continue
                }
                let value = values[Int(byte)]
                guard value != 0xFF, padding == 0 else { throw .invalidCharacter(offset: index + offset) }
                group = group << 6 | UInt32(value)
            }
            output.append(UInt8(group >> 16 & 0xFF))
            if padding < 2 { output.append(UInt8(group >> 8 & 0xFF)) }
            if padding < 1 { output.append(UInt8(group & 0xFF)) }
            if padding == 1, group & 0xFF != 0 { throw .nonCanonical }
            if padding == 2, group & 0xFFFF != 0 { throw .nonCanonical }
            index += 4
        }
        return output
    }
}
