import Foundation

/// The JSON encoder and decoder every module uses: camelCase keys, sorted output, RFC 3339 UTC times with milliseconds.
public enum JSONCoding {
    public static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Timestamp.format(date))
        }
        return encoder
    }

    public static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let container = try decoder.singleValueContainer()
            let text = try container.decode(String.self)
            guard let date = Timestamp.parse(text) else {
                throw DecodingError.dataCorruptedError(
                    in: container, debugDescription: "expected an RFC 3339 time, got \(text)")
            }
            return date
        }
        return decoder
    }

    /// One encoder and one decoder shared by `encode` and `decode`; both are safe to use from many tasks, and
    /// building a new one per call showed up in profiles.
    public static let sharedEncoder = encoder
    public static let sharedDecoder = decoder

    /// Encodes `value` as canonical JSON bytes (sorted keys).
    public static func encode(_ value: some Encodable) throws -> [UInt8] {
        Array(try sharedEncoder.encode(value))
    }

    /// Decodes `T` from JSON bytes, reporting malformed input as `RegistryError.malformedJSON`.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: some Collection<UInt8>) throws -> T {
        do {
            return try sharedDecoder.decode(T.self, from: Data(bytes))
        } catch let error as DecodingError {
            throw RegistryError(decoding: error)
        }
    }
}

/// Times in the registry: UTC, millisecond precision, RFC 3339 on the wire.
public enum Timestamp {
    /// The current time in whole milliseconds, so it survives storage unchanged.
    public static func now() -> Date {
        fromMilliseconds(milliseconds(Date()))
    }

    /// Whole milliseconds since 1970, rounded to nearest: `ms / 1000 * 1000` is not always exactly `ms` in
    /// floating point, so rounding down would turn 999 into 998.
    public static func milliseconds(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    public static func fromMilliseconds(_ ms: Int64) -> Date {
        Date(timeIntervalSince1970: Double(ms) / 1000)
    }

    public static func format(_ date: Date) -> String {
        let ms = milliseconds(date)
        var seconds = ms / 1000
        var millis = ms % 1000
        if millis < 0 {
            millis += 1000
            seconds -= 1
        }
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, width - text.count)) + text
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(millis), 3))Z"
    }

    /// Parses an RFC 3339 time to whole milliseconds, so that `parse(format(date)) == date` for stored dates.
    public static func parse(_ text: String) -> Date? {
        let parsed =
            (try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true)))
            ?? (try? Date(text, strategy: Date.ISO8601FormatStyle()))
        return parsed.map { fromMilliseconds(milliseconds($0)) }
    }
}

extension JSONCoding {
    /// A value as the JSON text a store keeps in a column (byte for byte what `encode` gives: the audit chain hashes
    /// what it records).
    public static func text(_ value: some Encodable) throws -> String {
        String(decoding: try encode(value), as: UTF8.self)
    }

    /// A value from JSON text a store kept; a failure is `INTERNAL`, as the stored row is damaged.
    public static func decodeStored<T: Decodable>(_ type: T.Type, _ text: String) throws -> T {
        do {
            return try sharedDecoder.decode(T.self, from: Data(text.utf8))
        } catch {
            throw RegistryError(.internalError, "A stored \(T.self) could not be decoded: \(error)")
        }
    }
}
