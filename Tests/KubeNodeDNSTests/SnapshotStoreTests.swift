import KubernetesAPI
import NodeDNSCore
import Testing

@testable import KubeNodeDNS

/// The store keeps only the labels a selector names: a kubelet's node carries about 8, and a change to one that no
/// selector reads must not wake the reconciler.
@Suite struct SnapshotStoreTests {
    @Test func onlyTheLabelsASelectorNamesAreKeptAndOthersWakeNothing() async throws {
        let selector = try LabelSelector("role in (web,edge),!spot")
        #expect(selector.keys == ["role", "spot"])
        let wake = Wake()
        let store = NodeStore(wake: wake, labelKeys: selector.keys)
        let labels = ["role": "web", "kubernetes.io/arch": "amd64", "topology.kubernetes.io/zone": "fsn1"]
        store.apply(.synced([Node(name: "a", labels: labels)]))
        #expect(store.snapshots.map(\.labels) == [["role": "web"]])
        var wakes = wake.stream.makeAsyncIterator()
        #expect(await wakes.next() != nil, "the first list wakes the reconciler")

        var relabelled = labels
        relabelled["topology.kubernetes.io/zone"] = "nbg1"
        store.apply(.upsert(Node(name: "a", labels: relabelled)))
        wake.finish()
        #expect(await wakes.next() == nil, "a label no selector names wakes nothing")

        let second = Wake()
        let watched = NodeStore(wake: second, labelKeys: selector.keys)
        watched.apply(.synced([Node(name: "a", labels: labels)]))
        var secondWakes = second.stream.makeAsyncIterator()
        _ = await secondWakes.next()
        relabelled["spot"] = "true"
        watched.apply(.upsert(Node(name: "a", labels: relabelled)))
        second.finish()
        #expect(await secondWakes.next() != nil, "a label the selector names wakes it")
        #expect(watched.snapshots.map(\.labels) == [["role": "web", "spot": "true"]])
    }

    @Test func withoutASelectorNoLabelIsKept() {
        let store = NodeStore(wake: Wake(), labelKeys: [])
        store.apply(.synced([Node(name: "a", labels: ["role": "web"])]))
        #expect(store.snapshots.map(\.labels) == [[:]])
    }
}
