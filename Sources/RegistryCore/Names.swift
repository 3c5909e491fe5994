/// Validation of model, stage and subject names: `^[a-z0-9][a-z0-9._-]{0,127}$`.
public enum Names {
    /// Returns whether `name` is a valid model or stage name.
    public static func isValid(_ name: some StringProtocol) -> Bool {
        let bytes = name.utf8
        guard let first = bytes.first, bytes.count <= 128, isLowerAlnum(first) else { return false }
        return bytes.allSatisfy {
            isLowerAlnum($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_")
                || $0 == UInt8(ascii: "-")
        }
    }

    /// Throws `INVALID_NAME` unless `name` is valid; `kind` names the thing in the message.
    public static func validate(_ name: String, kind: String) throws {
        guard isValid(name) else {
            throw RegistryError(
                .invalidName,
                "Invalid \(kind) name '\(name.prefix(200))': names match ^[a-z0-9][a-z0-9._-]{0,127}$.",
                details: ["name": .string(String(name.prefix(200))), "kind": .string(kind)])
        }
    }

    /// Subjects (token owners) are free-form but bounded: 1–128 printable characters without spaces or colons.
    public static func validateSubject(_ subject: String) throws {
        let ok =
            !subject.isEmpty && subject.utf8.count <= 128
            && subject.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7f && $0 != ":" }
        guard ok else {
            throw RegistryError(
                .invalidName,
                "Invalid subject '\(subject.prefix(200))': 1–128 printable ASCII characters, no spaces or ':'.",
                details: ["kind": .string("subject")])
        }
    }

    private static func isLowerAlnum(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
    }
}

/// Validation of free-form tags (`key: value`).
public enum Tags {
    public static func validate(_ tags: [String: String]) throws {
        guard tags.count <= 64 else {
            throw RegistryError.invalidArgument("At most 64 tags are allowed.", field: "tags")
        }
        for (key, value) in tags {
            guard !key.isEmpty, key.utf8.count <= 128, !key.contains(":") else {
                throw RegistryError.invalidArgument("Tag keys are 1–128 characters without ':'.", field: "tags")
            }
            guard value.utf8.count <= 1024 else {
                throw RegistryError.invalidArgument("Tag values are at most 1024 bytes.", field: "tags")
            }
        }
    }
}
