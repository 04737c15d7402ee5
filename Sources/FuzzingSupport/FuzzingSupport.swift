// What every fuzz target shares: libFuzzer's driver entry, and the plain build's replay tool
// (run saved inputs through the target's entry point, or write its seed corpus). Each target
// keeps its own `@_cdecl("<Target>_main")` (SwiftPM links an executable's entry under that name)
// and its own `@main`; both call in here.

#if canImport(Glibc)
import Glibc
#endif

/// A fuzz target's entry point: one input, as libFuzzer hands it over.
public typealias FuzzEntry = @convention(c) (UnsafePointer<UInt8>, Int) -> CInt

#if FUZZING
/// libFuzzer's driver (exported by its runtime since LLVM 12).
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: FuzzEntry
) -> CInt

/// Hands control to libFuzzer with `entry` as the target.
public func runLibFuzzer(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?, entry: FuzzEntry) -> CInt {
    var count = argc
    var arguments = argv
    return runFuzzerDriver(&count, &arguments, entry)
}
#endif

/// The plain build of a fuzz target: `NAME FILE...` runs saved inputs (crash reproducers, a
/// corpus) through `entry`; `NAME --write-seeds DIR` writes `seeds` for the fuzzer to mutate.
/// Exits with 0, or 1 when a file cannot be written.
public func runReplayTool(name: String, arguments: [String], seeds: () -> [[UInt8]], entry: FuzzEntry) -> Never {
    exit(replay(name: name, arguments: arguments, seeds: seeds, entry: entry))
}

func replay(name: String, arguments: [String], seeds: () -> [[UInt8]], entry: FuzzEntry) -> Int32 {
    if arguments.first == "--write-seeds", arguments.count == 2 {
        let inputs = seeds()
        for (index, seed) in inputs.enumerated() {
            let path = "\(arguments[1])/seed-\(index)"
            guard let file = fopen(path, "wb") else {
                print("\(name): cannot write \(path)")
                return 1
            }
            _ = seed.withUnsafeBufferPointer { fwrite($0.baseAddress, 1, $0.count, file) }
            fclose(file)
        }
        print("\(name): wrote \(inputs.count) seeds to \(arguments[1])")
        return 0
    }
    var count = 0
    for path in arguments {
        guard let bytes = readFile(path) else {
            print("\(name): cannot read \(path)")
            continue
        }
        bytes.withUnsafeBufferPointer { buffer in
            _ = entry(buffer.baseAddress ?? UnsafePointer(bitPattern: 1)!, buffer.count)
        }
        count += 1
    }
    print("\(name): ran \(count) input(s)")
    return 0
}

/// The whole content of the file at `path`, or `nil` when it cannot be read.
func readFile(_ path: String) -> [UInt8]? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    for _ in 0..<(1 << 14) {
        let count = fread(&buffer, 1, buffer.count, file)
        if count > 0 { bytes.append(contentsOf: buffer[0..<count]) }
        guard count == buffer.count else { break }
    }
    return ferror(file) == 0 ? bytes : nil
}

/// Splits a fuzz input into records `tag u8 | length u16 big-endian | bytes` (the last one cut
/// short if the input ends first).
public func records(in input: UnsafeBufferPointer<UInt8>) -> [(tag: UInt8, bytes: [UInt8])] {
    var result: [(tag: UInt8, bytes: [UInt8])] = []
    var offset = 0
    while offset + 3 <= input.count {
        let tag = input[offset]
        let length = Int(input[offset + 1]) << 8 | Int(input[offset + 2])
        offset += 3
        let end = min(input.count, offset + length)
        result.append((tag, Array(input[offset..<end])))
        offset = end
    }
    return result
}

/// The record encoding `records(in:)` reads, for seed corpora.
public func record(_ tag: UInt8, _ bytes: [UInt8]) -> [UInt8] {
    precondition(bytes.count <= 0xFFFF, "a record holds at most 65,535 bytes")
    return [tag, UInt8(bytes.count >> 8), UInt8(bytes.count & 0xFF)] + bytes
}
