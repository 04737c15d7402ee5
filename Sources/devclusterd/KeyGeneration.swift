// `devclusterd keygen`: a fresh random cluster key in a new file of mode 0400, never replacing an
// existing key without --force.

import Glibc
import Totem
import TotemRuntime

/// `devclusterd keygen [--output FILE] [--force]`.
enum KeyGeneration {
    /// Writes a new random key (mode 0400), creating the directory (0700) if needed. Refuses to
    /// replace an existing file without `force`; with it the new key replaces the old atomically.
    static func run(output: String, force: Bool) -> Int32 {
        let directory = FileSystem.parentDirectory(of: output)
        var status = stat()
        if stat(directory, &status) != 0 {
            do {
                try FileSystem.ensurePrivateDirectory(directory.hasPrefix("/") ? directory : currentDirectory() + "/" + directory)
            } catch {
                Console.error("devclusterd: keygen: cannot create the directory: \(error)\n")
                return 1
            }
        }
        if lstat(output, &status) == 0 && !force {
            Console.error("devclusterd: keygen: \(output) exists; use --force to replace it "
                + "(every node of the cluster then needs the new key)\n")
            return 1
        }
        let key: ClusterKey
        do {
            key = try ClusterKey.generate()
        } catch {
            Console.error("devclusterd: keygen: \(error)\n")
            return 1
        }
        do {
            if force {
                try key.replace(atPath: output)
            } else {
                try key.write(toPath: output)
            }
        } catch {
            if case .unwritable(let path, let code) = error {
                Console.error("devclusterd: keygen: cannot write \(path): \(String(cString: strerror(code)))\n")
            } else {
                Console.error("devclusterd: keygen: \(error)\n")
            }
            return 1
        }
        Console.output("devclusterd: wrote a new \(key.byteCount)-byte cluster key to \(output) (mode 0400); "
            + "copy it to every node and name it in [totem] keyfile\n")
        return 0
    }

    private static func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "." }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
