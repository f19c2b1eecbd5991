"""Drives the Debian python3-kubernetes client against the gpuslice fake API server.

Usage: python_client_test.py KUBECONFIG. Exits non-zero (assertion) on any mismatch and prints
"python client: OK" at the end.

Known client quirk: create_namespaced_binding() deserialises the answer as a V1Binding, but the
API server answers a Binding POST with a metav1.Status, so the client raises ValueError
("Invalid value for `target`, must not be `None`") although the binding succeeded. The usual
workaround, used here, is _preload_content=False (the raw HTTP response is returned unparsed).
"""
import json
import sys

from kubernetes import client, config, watch


def pod(name):
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name, labels={"app": "py"}),
        spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="busybox")]))


def binding(name, gpu):
    return client.V1Binding(
        metadata=client.V1ObjectMeta(name=name, annotations={"gpuslice.io/gpu": gpu}),
        target=client.V1ObjectReference(api_version="v1", kind="Node", name="node-1"))


def main():
    config.load_kube_config(config_file=sys.argv[1])
    v1 = client.CoreV1Api()

    v1.create_namespaced_pod("default", pod("first"))
    listed = v1.list_namespaced_pod("default", label_selector="app=py")
    assert [p.metadata.name for p in listed.items] == ["first"], listed.items
    version = listed.metadata.resource_version

    v1.create_namespaced_pod("default", pod("bound-by-python"))
    seen = []
    w = watch.Watch()
    for event in w.stream(v1.list_namespaced_pod, "default", resource_version=version,
                          timeout_seconds=10):
        seen.append((event["type"], event["object"].metadata.name))
        if event["object"].metadata.name == "bound-by-python":
            w.stop()
    assert ("ADDED", "bound-by-python") in seen, seen

    quirk = "none: the default call returned normally"
    try:
        v1.create_namespaced_binding("default", binding("first", "GPU-0"))
    except ValueError as error:
        quirk = "ValueError from the default call: %s" % error
    first = v1.read_namespaced_pod("first", "default")
    assert first.spec.node_name == "node-1", first.spec
    print("python client quirk:", quirk)

    response = v1.create_namespaced_binding("default", binding("bound-by-python", "GPU-1"),
                                            _preload_content=False)
    assert response.status == 201, response.status
    status = json.loads(response.data)
    assert status["kind"] == "Status" and status["status"] == "Success", status

    try:
        v1.create_namespaced_binding("default", binding("bound-by-python", "GPU-2"),
                                     _preload_content=False)
        raise AssertionError("a second Binding must be refused")
    except client.exceptions.ApiException as error:
        assert error.status == 409, error
        assert json.loads(error.body)["reason"] == "Conflict", error.body
    print("python client: OK")


if __name__ == "__main__":
    main()
