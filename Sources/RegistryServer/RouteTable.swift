import Hummingbird
import Synchronization

/// The registered path templates and their methods, to answer 405 with `Allow` instead of 404.
final class RouteTable: Sendable {
    private struct Entry {
        let method: String
        let segments: [Substring]
    }

    private let entries = Mutex<[Entry]>([])

    func add(method: HTTPRequest.Method, path: String) {
        let entry = Entry(method: method.rawValue, segments: path.split(separator: "/"))
        entries.withLock { $0.append(entry) }
    }

    /// The methods registered for templates that match `path`, comma-separated; nil when no template matches.
    func allowedMethods(for path: String) -> String? {
        let segments = path.split(separator: "/")
        let methods = entries.withLock { entries in
            entries.filter { entry in
                entry.segments.count == segments.count
                    && zip(entry.segments, segments).allSatisfy { $0.hasPrefix(":") || $0 == $1 }
            }.map(\.method)
        }
        guard !methods.isEmpty else { return nil }
        var seen = Set<String>()
        return methods.filter { seen.insert($0).inserted }.joined(separator: ", ")
    }
}
