// The little HTTP/1.1 the metrics endpoint speaks: reading a request head (request line and
// headers, bounded), routing it (GET or HEAD of /metrics), and writing a response with
// `Connection: close`. Pure: no sockets; MetricsServer moves the bytes.

/// A request head as far as the endpoint cares, and the answers it gives.
enum MetricsHTTP {
    /// The path served.
    static let path = "/metrics"

    /// What the bytes read so far make.
    enum Head: Equatable {
        /// No blank line yet, and still within the bound: read more.
        case incomplete
        /// A well-formed request line (the headers are read past, not interpreted).
        case request(method: String, target: String, version: String)
        /// Not HTTP: 400 with the reason.
        case malformed(String)
        /// No end of the head within `maximumHeaderBytes`: 431.
        case tooLarge
    }

    /// Looks for the end of the request head (`CRLF CRLF`, or `LF LF` from lax clients) within
    /// the first `maximumHeaderBytes` bytes and parses its request line.
    ///
    /// - Parameter searchedBytes: how many bytes an earlier call found no end in (the search
    ///   resumes just before them, so a client sending a byte at a time costs linear work).
    static func examine(_ bytes: ArraySlice<UInt8>, maximumHeaderBytes: Int, searchedBytes: Int = 0) -> Head {
        let resume = bytes.startIndex + max(0, min(searchedBytes, bytes.count) - 3)
        guard let end = endOfHead(bytes.prefix(maximumHeaderBytes), from: resume) else {
            return bytes.count >= maximumHeaderBytes ? .tooLarge : .incomplete
        }
        let head = bytes[bytes.startIndex..<end]
        let lineEnd = head.firstIndex(of: 0x0A) ?? head.endIndex
        var line = head[head.startIndex..<lineEnd]
        if line.last == 0x0D { line = line.dropLast() }
        guard line.allSatisfy({ (0x20...0x7E).contains($0) }) else {
            return .malformed("the request line has bytes other than printable ASCII")
        }
        let parts = line.split(separator: 0x20, omittingEmptySubsequences: false)
        guard parts.count == 3, parts.allSatisfy({ !$0.isEmpty }) else {
            return .malformed("the request line is not METHOD TARGET HTTP/VERSION")
        }
        let method = String(decoding: parts[0], as: UTF8.self)
        let target = String(decoding: parts[1], as: UTF8.self)
        let version = String(decoding: parts[2], as: UTF8.self)
        guard method.utf8.allSatisfy({ (0x41...0x5A).contains($0) }) else {
            return .malformed("the method \"\(method)\" is not a token of capital letters")
        }
        guard version.hasPrefix("HTTP/") else { return .malformed("\"\(version)\" is not an HTTP version") }
        return .request(method: method, target: target, version: version)
    }

    /// The index just past the blank line ending the head, looking from `start` on, or `nil`.
    private static func endOfHead(_ bytes: ArraySlice<UInt8>, from start: Int) -> Int? {
        var index = max(bytes.startIndex, start)
        while index < bytes.endIndex {
            if bytes[index] == 0x0A {
                let next = index + 1
                if next < bytes.endIndex && bytes[next] == 0x0A { return next + 1 }
                if next + 1 < bytes.endIndex && bytes[next] == 0x0D && bytes[next + 1] == 0x0A { return next + 2 }
            }
            index += 1
        }
        return nil
    }

    /// A response to send, then close.
    struct Response: Equatable {
        var status: Int
        var reason: String
        var contentType: String
        var body: [UInt8]
        /// HEAD: the headers of the GET, without the body.
        var omitsBody = false
        /// Extra headers (`Allow` on a 405).
        var extraHeaders: [String] = []

        /// A plain-text error response.
        static func error(_ status: Int, _ reason: String, _ message: String) -> Response {
            Response(status: status, reason: reason, contentType: "text/plain; charset=utf-8", body: Array((message + "\n").utf8))
        }

        /// The bytes on the wire.
        var encoded: [UInt8] {
            var head = "HTTP/1.1 \(status) \(reason)\r\nContent-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n"
            for header in extraHeaders { head += header + "\r\n" }
            head += "Connection: close\r\n\r\n"
            var bytes = Array(head.utf8)
            if !omitsBody { bytes.append(contentsOf: body) }
            return bytes
        }
    }

    /// The answer to a head: the metrics (built by `render` only when they are asked for), or
    /// 400, 404, 405, 431 or 505.
    static func respond(to head: Head, render: () -> [UInt8]) -> Response? {
        switch head {
        case .incomplete:
            return nil
        case .tooLarge:
            return .error(431, "Request Header Fields Too Large", "the request head is too large")
        case .malformed(let reason):
            return .error(400, "Bad Request", reason)
        case .request(let method, let target, let version):
            guard version == "HTTP/1.1" || version == "HTTP/1.0" else {
                return .error(505, "HTTP Version Not Supported", "only HTTP/1.0 and HTTP/1.1 are spoken here")
            }
            let path = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? target
            guard path == Self.path else {
                return .error(404, "Not Found", "only \(Self.path) is served here")
            }
            guard method == "GET" || method == "HEAD" else {
                var response = Response.error(405, "Method Not Allowed", "\(Self.path) answers GET and HEAD only")
                response.extraHeaders = ["Allow: GET, HEAD"]
                return response
            }
            var response = Response(status: 200, reason: "OK", contentType: MetricsText.contentType, body: render())
            response.omitsBody = method == "HEAD"
            return response
        }
    }
}
