// A fuzz target for the control protocol's JSON parser, which reads every request line a local
// client sends. Built with libFuzzer by scripts/fuzz.sh; a plain build replays saved inputs.

import DevclusterControl
import FuzzingSupport

/// The input is one request line, parsed under the control protocol's limits. What parses must
/// encode to JSON that parses back to the same value, and encoding must be stable (the encoder
/// writes what the parser reads); nothing may trap.
@_cdecl("LLVMFuzzerTestOneInput")
public func jsonFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    guard let value = try? JSONParser.parse(input, limits: .control) else { return 0 }
    var encoded: [UInt8] = []
    value.encode(into: &encoded)
    guard let again = try? JSONParser.parse(encoded, limits: JSONParser.Limits(maximumBytes: .max, maximumDepth: 64)) else {
        preconditionFailure("the encoding of a parsed value does not parse: \(String(decoding: encoded, as: UTF8.self))")
    }
    // Doubles are compared through their encoding: -0.0 and 0.0 are equal values, and
    // encoding them may differ.
    var reencoded: [UInt8] = []
    again.encode(into: &reencoded)
    guard again == value || reencoded == encoded else {
        preconditionFailure("a parsed value changed through encoding and parsing: \(String(decoding: encoded, as: UTF8.self))")
    }
    return 0
}

/// Requests and events as the protocol documents them, and the awkward corners of JSON.
enum SeedCorpus {
    static func inputs() -> [[UInt8]] {
        [
            #"{"id":1,"cmd":"members"}"#,
            #"{"id":"a","cmd":"devstate_set","args":{"device":"Custom:x","state":"INUSE"}}"#,
            #"{"id":2,"cmd":"event_publish","args":{"channel":"alerts","type":"note","attributes":{"site":"paris"},"payload_base64":"aGVsbG8="}}"#,
            #"{"event":"device","data":{"device":"SIP/100","state":"INUSE","servers":[{"node":1,"state":"INUSE"}]}}"#,
            #"[1, -0, 0.5e-3, 1E+308, -9223372036854775808, 18446744073709551615, true, false, null]"#,
            #"{"s":"\u00e9\ud83d\ude00\n\t\"\\\/","e":"","k":{"":[]}}"#,
            #"  {"deep":[[[[[[[[[[[[[[[[{}]]]]]]]]]]]]]]]]}  "#,
        ].map { Array($0.utf8) }
    }
}

#if FUZZING
/// SwiftPM links an executable's entry point under this name; in a fuzzing build it hands
/// control to libFuzzer.
@_cdecl("JSONFuzzer_main")
func jsonFuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv) { data, size in jsonFuzzerTestOneInput(data, size) }
}
#else
/// Replays saved fuzz inputs: `JSONFuzzer FILE...`; `JSONFuzzer --write-seeds DIR`.
@main
struct JSONFuzzerReplay {
    static func main() {
        runReplayTool(name: "JSONFuzzer", arguments: Array(CommandLine.arguments.dropFirst()), seeds: SeedCorpus.inputs) {
            data, size in jsonFuzzerTestOneInput(data, size)
        }
    }
}
#endif
