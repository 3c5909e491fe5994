/// One column value as a metadata store keeps it, for moving rows between stores (`registry migrate`): the four
/// kinds both SQLite and PostgreSQL tables here hold.
public enum StoredValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
}
