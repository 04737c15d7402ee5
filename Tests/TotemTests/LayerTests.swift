// The layers of ../shared/ARCHITECTURE.md, checked on the sources: SwiftPM's dependency graph
// already refuses an import of a target that is not a dependency (TotemRuntime from the core or
// the services), but the system modules (Glibc, Foundation, Dispatch) can be imported from any
// target; this test makes such an import in the pure layers fail the suite.

import Testing

@Suite("Layers")
struct LayerTests {
    /// The package root, from this file's path (Tests/TotemTests/LayerTests.swift).
    static let root: String = {
        var parts = String(#filePath).split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    /// What each pure target may import.
    static let allowed: [String: Set<String>] = [
        "Totem": [],
        "Membership": ["Totem"],
        "EventService": ["Totem", "Membership"],
        "DeviceState": ["Totem", "Membership", "EventService"],
        "ClusterServices": ["Totem", "Membership", "EventService", "DeviceState"],
        "TotemSimulation": ["Totem"],
        "ServiceSimulation": ["Totem", "TotemSimulation", "ClusterServices", "Membership", "EventService", "DeviceState"],
    ]

    @Test("the core and the services import nothing but the layers below them: no Glibc, Foundation or runtime",
          arguments: allowed.keys.sorted())
    func pureTargetsImportOnlyTheirLayers(target: String) throws {
        let files = try #require(swiftFiles(under: "\(Self.root)/Sources/\(target)"), "cannot list Sources/\(target)")
        #expect(files.count > 3, "found only \(files.count) files under Sources/\(target)")
        let permitted = Self.allowed[target] ?? []
        for file in files {
            let text = try #require(readText(file), "cannot read \(file)")
            for line in text.split(separator: "\n") {
                let words = line.split(separator: " ")
                guard let index = words.firstIndex(of: "import"), words.prefix(upTo: index).allSatisfy({ $0.hasPrefix("@") }),
                      index + 1 < words.count else { continue }
                let module = String(words[index + 1])
                #expect(permitted.contains(module), "\(file): imports \(module); \(target) may import only \(permitted.sorted())")
            }
        }
    }
}

/// The `.swift` files below `directory`, recursively (`nil` when it cannot be listed).
private func swiftFiles(under directory: String) -> [String]? {
    guard let listing = readDirectory(directory) else { return nil }
    var files: [String] = []
    for (name, isDirectory) in listing {
        let path = directory + "/" + name
        if isDirectory {
            guard let inner = swiftFiles(under: path) else { return nil }
            files += inner
        } else if name.hasSuffix(".swift") {
            files.append(path)
        }
    }
    return files
}

#if canImport(Glibc)
import Glibc

private func readDirectory(_ path: String) -> [(String, Bool)]? {
    guard let handle = opendir(path) else { return nil }
    defer { closedir(handle) }
    var entries: [(String, Bool)] = []
    for _ in 0..<100_000 {
        guard let entry = readdir(handle) else { break }
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        guard name != "." && name != ".." else { continue }
        entries.append((name, entry.pointee.d_type == UInt8(DT_DIR)))
    }
    return entries
}

private func readText(_ path: String) -> String? {
    guard let file = fopen(path, "rb") else { return nil }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    for _ in 0..<1_024 {
        let count = fread(&buffer, 1, buffer.count, file)
        bytes += buffer[0..<count]
        guard count == buffer.count else { break }
    }
    return String(decoding: bytes, as: UTF8.self)
}
#endif
