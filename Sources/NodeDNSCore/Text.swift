private let hexDigits = Array("0123456789ABCDEF")

/// Small text helpers the edge modules share, so none of them needs full Foundation (and ICU) for them.
extension StringProtocol {
    /// Without leading and trailing spaces, tabs and line breaks.
    package var trimmingWhitespace: String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }

    /// Percent-encoded for a URL path segment or query value: only RFC 3986's unreserved characters stay as they are.
    package var percentEncoded: String {
        var out = ""
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + String(hexDigits[Int(byte >> 4)]) + String(hexDigits[Int(byte & 0xF)])
            }
        }
        return out
    }
}

/// A URL's query part, `?key=value&...` with every key and value percent-encoded, or "" when there is none.
package func urlQuery(_ items: [(String, String)]) -> String {
    items.isEmpty ? "" : "?" + items.map { "\($0.0.percentEncoded)=\($0.1.percentEncoded)" }.joined(separator: "&")
}

extension Double {
    /// The value with two decimals (`1.50`), as `String(format: "%.2f")` prints it, for durations in log lines.
    package var twoDecimals: String {
        guard isFinite else { return "\(self)" }
        let hundredths = Int((abs(self) * 100).rounded())
        let fraction = hundredths % 100
        return (self < 0 && hundredths > 0 ? "-" : "") + "\(hundredths / 100)." + (fraction < 10 ? "0" : "") + "\(fraction)"
    }
}

/// A JSON decoding failure in one line that says where: `no "metadata" at items[3]`, not Foundation's
/// "The data couldn't be read because it isn't in the correct format."
package func decodingSummary(_ error: any Error) -> String {
    guard let error = error as? DecodingError else { return "\(error)" }
    func at(_ context: DecodingError.Context) -> String {
        let path = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        return path.isEmpty ? "at the top" : "at " + (path.hasPrefix(".") ? String(path.dropFirst()) : path)
    }
    switch error {
    case .keyNotFound(let key, let context): return "no \"\(key.stringValue)\" \(at(context))"
    case .typeMismatch(let type, let context): return "not a \(type) \(at(context))"
    case .valueNotFound(let type, let context): return "null where a \(type) belongs \(at(context))"
    case .dataCorrupted(let context): return "\(context.debugDescription) \(at(context))"
    @unknown default: return "\(error)"
    }
}

/// Text that came from outside (a peer's error message, a field of an answer) made safe for one log line, `/status`
/// or an Event: line breaks, escapes and every other control character (C0, DEL, C1, and the Unicode line and
/// paragraph separators) are written as escapes, so no peer can start a line of its own; text past `limit`
/// characters is cut with a marker that says how much was left out. `escapingControls: false` only cuts, for an
/// encoder that escapes by itself (JSON).
package func peerText(_ text: String, limit: Int = 2048, escapingControls: Bool = true) -> String {
    var out = ""
    var kept = 0
    var cut = 0
    for scalar in text.unicodeScalars {
        if kept >= limit {
            cut += 1
            continue
        }
        kept += 1
        guard escapingControls else {
            out.unicodeScalars.append(scalar)
            continue
        }
        switch scalar {
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            let value = scalar.value
            if value > 0xFF && scalar.breaksALine {
                out += "\\u" + String(value, radix: 16)
            } else if scalar.breaksALine {
                out += "\\x" + String(hexDigits[Int(value >> 4)]) + String(hexDigits[Int(value & 0xF)])
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    if cut > 0 { out += "…[cut: \(cut) more characters]" }
    return out
}

extension Unicode.Scalar {
    /// A character a log line must not carry raw: C0 and C1 controls, DEL, and the Unicode line and paragraph
    /// separators (some viewers start a line at each).
    package var breaksALine: Bool {
        value < 0x20 || value == 0x7F || (0x80...0x9F).contains(value) || value == 0x2028 || value == 0x2029
    }
}

/// `text` as a JSON string literal, quotes included: `"` and `\` escaped, newline, return and tab by their short
/// escapes, and every other scalar that could break a line (controls, U+2028, U+2029) as `\uXXXX`, so one value can
/// never end a log line or a JSON document early. The one JSON quoter of the project.
package func jsonQuoted(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if scalar.breaksALine {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}
