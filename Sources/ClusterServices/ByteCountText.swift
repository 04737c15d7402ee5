// Sizes in bytes as people read them, for log lines and the CLI (the host's and the daemon's).

/// `32 MiB`, `1.5 MiB`, `900 bytes`.
public enum ByteCountText {
    /// `size` in the largest 1024-based unit it reaches, to a tenth.
    public static func describe(_ size: Int) -> String {
        for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] where size >= 1 << shift {
            let tenths = (size * 10 + (1 << shift) / 2) >> shift
            return tenths % 10 == 0 ? "\(tenths / 10) \(unit)" : "\(tenths / 10).\(tenths % 10) \(unit)"
        }
        return "\(size) bytes"
    }
}
