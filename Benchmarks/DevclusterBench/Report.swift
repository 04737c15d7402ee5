// report: placeholder until the summary is written.
struct Report {
    let options: BenchOptions
    func run() throws { throw BenchError("report: not yet implemented") }
}
