/// The three patch kinds a kube-apiserver accepts, applied to dynamic JSON.
package enum KubePatch {
    /// Why a patch could not be applied (answered as 422 or 400).
    package struct Failure: Error, CustomStringConvertible {
        package let message: String
        package var description: String { message }
    }

    /// RFC 7386 JSON merge patch.
    package static func merge(_ target: JSON?, _ patch: JSON) -> JSON {
        guard case .object(let members) = patch else { return patch }
        var result = target?.object ?? [:]
        for (key, value) in members {
            if value.isNull {
                result[key] = nil
            } else {
                result[key] = merge(result[key], value)
            }
        }
        return .object(result)
    }

    /// Lists merged by a key rather than replaced, from the Node and ObjectMeta OpenAPI patch strategies.
    private static let mergeKeys: [String: String] = [
        "status.addresses": "type", "status.conditions": "type", "metadata.ownerReferences": "uid",
        "status.images": "names", "status.volumesAttached": "name",
    ]
    private static let setMergeLists: Set<String> = ["metadata.finalizers", "spec.podCIDRs"]

    /// Strategic merge patch with the Node merge keys, `$patch` directives and `null` deletes.
    package static func strategic(_ target: JSON?, _ patch: JSON, path: [String] = []) throws(Failure) -> JSON? {
        guard case .object(var members) = patch else { return patch }
        if let directive = members["$patch"]?.string {
            members["$patch"] = nil
            switch directive {
            case "replace": return .object(members)
            case "delete": return nil
            default: throw Failure(message: "unknown patch directive \(directive)")
            }
        }
        var result = target?.object ?? [:]
        var deleteFromPrimitive: [String: [JSON]] = [:]
        for (key, value) in members {
            if key.hasPrefix("$setElementOrder/") || key == "$retainKeys" { continue }
            if key.hasPrefix("$deleteFromPrimitiveList/") {
                deleteFromPrimitive[String(key.dropFirst("$deleteFromPrimitiveList/".count))] = value.array ?? []
                continue
            }
            let childPath = path + [key]
            let dotted = childPath.joined(separator: ".")
            if value.isNull {
                result[key] = nil
            } else if case .object = value {
                result[key] = try strategic(result[key], value, path: childPath)
            } else if case .array(let items) = value, let mergeKey = mergeKeys[dotted] {
                result[key] = try mergeList(result[key]?.array ?? [], items, key: mergeKey, path: childPath)
            } else if case .array(let items) = value, setMergeLists.contains(dotted) {
                var existing = result[key]?.array ?? []
                for item in items where !existing.contains(item) { existing.append(item) }
                result[key] = .array(existing)
            } else {
                result[key] = value
            }
        }
        for (key, removals) in deleteFromPrimitive {
            if let existing = result[key]?.array { result[key] = .array(existing.filter { !removals.contains($0) }) }
        }
        return .object(result)
    }

    private static func mergeList(
        _ existing: [JSON], _ patch: [JSON], key: String, path: [String]
    ) throws(Failure)
        -> JSON
    {
        if patch.contains(where: { $0["$patch"]?.string == "replace" }) {
            return .array(patch.filter { $0["$patch"] == nil })
        }
        var result = existing
        for item in patch {
            guard let keyValue = item[key] else { throw Failure(message: "map in list without merge key \(key)") }
            let index = result.firstIndex { $0[key] == keyValue }
            if item["$patch"]?.string == "delete" {
                if let index { result.remove(at: index) }
                continue
            }
            if let index {
                if let merged = try strategic(result[index], item, path: path) { result[index] = merged }
            } else {
                result.append(item)
            }
        }
        return .array(result)
    }

    /// RFC 6902 JSON patch.
    package static func jsonPatch(_ target: JSON, _ operations: JSON) throws(Failure) -> JSON {
        guard case .array(let ops) = operations else { throw Failure(message: "a JSON patch must be an array") }
        var document = target
        for op in ops {
            guard let name = op["op"]?.string, let path = op["path"]?.string else {
                throw Failure(message: "a JSON patch operation needs op and path")
            }
            let tokens = try pointer(path)
            switch name {
            case "add":
                guard let value = op["value"] else { throw Failure(message: "add needs a value") }
                document = try set(document, tokens, value, insert: true)
            case "replace":
                guard let value = op["value"] else { throw Failure(message: "replace needs a value") }
                _ = try get(document, tokens)
                document = try set(document, tokens, value, insert: false)
            case "remove":
                document = try remove(document, tokens)
            case "test":
                guard try get(document, tokens) == op["value"] else {
                    throw Failure(message: "test operation failed at \(path)")
                }
            case "move", "copy":
                guard let from = op["from"]?.string else { throw Failure(message: "\(name) needs from") }
                let value = try get(document, try pointer(from))
                if name == "move" { document = try remove(document, try pointer(from)) }
                document = try set(document, tokens, value, insert: true)
            default:
                throw Failure(message: "unknown JSON patch operation \(name)")
            }
        }
        return document
    }

    private static func pointer(_ path: String) throws(Failure) -> [String] {
        if path.isEmpty { return [] }
        guard path.hasPrefix("/") else { throw Failure(message: "bad JSON pointer \(path)") }
        return path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }
    }

    private static func get(_ document: JSON, _ tokens: [String]) throws(Failure) -> JSON {
        var current = document
        for token in tokens {
            switch current {
            case .object(let members):
                guard let next = members[token] else { throw Failure(message: "path not found: \(token)") }
                current = next
            case .array(let items):
                guard let index = Int(token), items.indices.contains(index) else {
                    throw Failure(message: "bad array index \(token)")
                }
                current = items[index]
            default: throw Failure(message: "path not found: \(token)")
            }
        }
        return current
    }

    private static func set(_ document: JSON, _ tokens: [String], _ value: JSON, insert: Bool) throws(Failure) -> JSON {
        guard let head = tokens.first else { return value }
        let rest = Array(tokens.dropFirst())
        switch document {
        case .object(var members):
            if rest.isEmpty {
                members[head] = value
            } else {
                guard let child = members[head] else { throw Failure(message: "path not found: \(head)") }
                members[head] = try set(child, rest, value, insert: insert)
            }
            return .object(members)
        case .array(var items):
            if rest.isEmpty {
                if head == "-" {
                    items.append(value)
                } else if let index = Int(head), index >= 0, index <= items.count {
                    if insert { items.insert(value, at: index) } else if index < items.count { items[index] = value }
                } else {
                    throw Failure(message: "bad array index \(head)")
                }
            } else {
                guard let index = Int(head), items.indices.contains(index) else {
                    throw Failure(message: "bad array index \(head)")
                }
                items[index] = try set(items[index], rest, value, insert: insert)
            }
            return .array(items)
        default:
            throw Failure(message: "path not found: \(head)")
        }
    }

    private static func remove(_ document: JSON, _ tokens: [String]) throws(Failure) -> JSON {
        guard let head = tokens.first else { throw Failure(message: "cannot remove the root") }
        let rest = Array(tokens.dropFirst())
        switch document {
        case .object(var members):
            guard let child = members[head] else { throw Failure(message: "path not found: \(head)") }
            members[head] = rest.isEmpty ? nil : try remove(child, rest)
            return .object(members)
        case .array(var items):
            guard let index = Int(head), items.indices.contains(index) else {
                throw Failure(message: "bad array index \(head)")
            }
            if rest.isEmpty { items.remove(at: index) } else { items[index] = try remove(items[index], rest) }
            return .array(items)
        default:
            throw Failure(message: "path not found: \(head)")
        }
    }
}
