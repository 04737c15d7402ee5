// Base64 against RFC 4648 section 10's vectors, round trips, and strict rejection.

import Testing
import DevclusterControl

struct Base64Tests {
    @Test(arguments: [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="),
                      ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy")])
    func rfc4648Vectors(plain: String, encoded: String) throws {
        #expect(Base64.encode(Array(plain.utf8)) == encoded)
        #expect(try Base64.decode(encoded) == Array(plain.utf8))
    }

    @Test func everyByteValueRoundTrips() throws {
        let bytes = (0...255).map { UInt8($0) }
        for length in [0, 1, 2, 3, 4, 100, 256] {
            #expect(try Base64.decode(Base64.encode(bytes.prefix(length))) == Array(bytes.prefix(length)))
        }
        #expect(Base64.encode([0x00, 0xFF, 0x01]) == "AP8B")
    }

    @Test func malformedTextIsRejectedWithTheReason() {
        #expect(throws: Base64.DecodeError.length(3)) { try Base64.decode("AP8") }
        #expect(throws: Base64.DecodeError.invalidCharacter(offset: 2)) { try Base64.decode("AP 8") }
        #expect(throws: Base64.DecodeError.invalidCharacter(offset: 1)) { try Base64.decode("A=AA") }
        #expect(throws: Base64.DecodeError.invalidCharacter(offset: 2)) { try Base64.decode("AA=A") }
        #expect(throws: Base64.DecodeError.invalidCharacter(offset: 2)) { try Base64.decode("Zg==Zg==") }
        #expect(throws: Base64.DecodeError.nonCanonical) { try Base64.decode("Zh==") }
        #expect(throws: Base64.DecodeError.nonCanonical) { try Base64.decode("Zm9=") }
    }
}
