"""The Python docker SDK (the package on this machine) against a berth daemon.

Usage: flows.py DOCKER_HOST IMAGE NAME_PREFIX
Prints "ok" when every flow passed; any failure raises.
"""
import sys
import time

import docker

host, image, prefix = sys.argv[1], sys.argv[2], sys.argv[3]
client = docker.DockerClient(base_url=host, version="auto", timeout=60)
api = client.api

assert client.ping() is True
v = client.version()
assert v["ApiVersion"] >= "1.24", v
info = client.info()
assert info["NCPU"] >= 1 and info["MemTotal"] > 0, info

# run with output, removed
out = client.containers.run(image, ["sh", "-c", "echo hello; echo err >&2"], remove=True)
assert out == b"hello\n", out
out = client.containers.run(image, ["sh", "-c", "echo hello; echo err >&2"], remove=True, stderr=True, stdout=False)
assert out == b"err\n", out

# a failing command raises ContainerError with the exit status
try:
    client.containers.run(image, ["sh", "-c", "exit 3"], remove=True)
    raise AssertionError("no ContainerError")
except docker.errors.ContainerError as e:
    assert e.exit_status == 3, e

# detached: status, exec, logs, stop, wait, remove
name = prefix + "-d"
c = client.containers.run(image, ["sh", "-c", "echo started; sleep 1000"], detach=True, name=name,
                          environment={"FOO": "bar"}, labels={"suite": prefix}, working_dir="/tmp",
                          hostname="sdkhost")
c.reload()
assert c.status == "running", c.status
assert c.name == name
assert c.labels["suite"] == prefix
code, output = c.exec_run(["sh", "-c", "echo $FOO; pwd; hostname"])
assert code == 0 and output == b"bar\n/tmp\nsdkhost\n", (code, output)
code, output = c.exec_run("sh -c 'exit 9'")
assert code == 9, code
for _ in range(100):
    if b"started" in c.logs():
        break
    time.sleep(0.05)
assert c.logs() == b"started\n", c.logs()
assert [x.id for x in client.containers.list(filters={"label": "suite=" + prefix})] == [c.id]
assert client.containers.get(name).id == c.id
c.stop(timeout=1)
assert c.wait()["StatusCode"] == 137
c.reload()
assert c.status == "exited", c.status
assert c.attrs["State"]["ExitCode"] == 137
c.remove()
try:
    client.containers.get(name)
    raise AssertionError("still there")
except docker.errors.NotFound:
    pass

# create/start/wait with a kill signal
c = client.containers.create(image, ["sh", "-c", "trap 'exit 5' TERM; echo up; while :; do sleep 0.1; done"],
                             name=prefix + "-k")
assert c.status == "created"
c.start()
for _ in range(100):
    if b"up" in c.logs():
        break
    time.sleep(0.05)
c.kill(signal="SIGTERM")
assert c.wait(timeout=20)["StatusCode"] == 5
c.remove()

# As the SDK's own suite checks them (tests/integration/api_container_test.py):
api = client.api
# a SIGKILL is answered once the container is down
c = api.create_container(image, ["sleep", "9999"], name=prefix + "-kill9")
api.start(c)
api.kill(c)
st = api.inspect_container(c)["State"]
assert st["ExitCode"] == 137 and not st["Running"], st
api.remove_container(c)
# wait returns at the first exit of a container its restart policy brings back
c = api.create_container(image, ["sleep", "1"], name=prefix + "-always",
                         host_config=api.create_host_config(restart_policy={"Name": "always"}))
api.start(c)
assert api.wait(c, timeout=20)["StatusCode"] == 0
api.remove_container(c, force=True)
# the runtime at the body's top level, the daemon's log driver recorded
c = api.create_container(image, ["true"], runtime="runc", name=prefix + "-rt")
hc = api.inspect_container(c)["HostConfig"]
assert hc["Runtime"] == "runc" and hc["LogConfig"]["Type"] == "json-file", hc
api.remove_container(c)
# attach with logs and no stream: what was logged, then the end
c = api.create_container(image, "echo hello", name=prefix + "-al")
api.start(c)
api.wait(c, condition="not-running")
assert api.attach(c, stream=False, logs=True) == b"hello\n"
api.remove_container(c)
# stats of a container with a network namespace of its own carry "networks"
c = api.create_container(image, ["sleep", "60"], name=prefix + "-st")
api.start(c)
s = api.stats(c, stream=False)
for k in ["read", "networks", "precpu_stats", "cpu_stats", "memory_stats", "blkio_stats"]:
    assert k in s, (k, s)
api.remove_container(c, force=True)
# detach keys end a TTY attach and leave the container running
import socket
for keys, seq in [(None, b"\x10\x11"), ("ctrl-x", b"\x18")]:
    if keys:
        api._general_configs["detachKeys"] = keys
    c = api.create_container(image, "cat", stdin_open=True, tty=True, detach=True,
                             name=prefix + "-dk" + str(len(seq)))
    api.start(c)
    sock = api.attach_socket(c, {"stdin": True, "stream": True})
    raw = sock._sock
    raw.sendall(seq)
    raw.settimeout(10)
    data = b""
    try:
        while True:
            chunk = raw.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    assert seq not in data, data
    assert api.inspect_container(c)["State"]["Running"]
    api._general_configs.pop("detachKeys", None)
    api.remove_container(c, force=True)

# an exec with a terminal started without one: the terminal's output in stdout frames
c = api.create_container(image, "cat", stdin_open=True, detach=True, name=prefix + "-ex")
api.start(c)
e = api.exec_create(c, 'sh -c "echo hello out; echo hello err >&2"', tty=True)
assert api.exec_start(e, demux=True) == (b"hello out\r\nhello err\r\n", None)
api.remove_container(c, force=True)

# a committed image's Parent is the container's image
c = api.create_container(image, ["touch", "/test"], name=prefix + "-cm")
api.start(c)
api.wait(c)
committed = api.commit(c)["Id"]
assert api.inspect_image(committed)["Parent"] == api.inspect_image(image)["Id"]
api.remove_container(c)
api.remove_image(committed)


# networks: create with IPAM, containers on it by name, aliases, connect/disconnect,
# published ports, inspect shapes
ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.123.0.0/24", gateway="10.123.0.1")])
net = client.networks.create(prefix + "-net", driver="bridge", ipam=ipam, labels={"t": prefix})
assert net.attrs["IPAM"]["Config"][0]["Subnet"] == "10.123.0.0/24", net.attrs
assert client.networks.get(net.id).name == prefix + "-net"
assert any(n.id == net.id for n in client.networks.list(filters={"label": "t=" + prefix}))
srv = client.containers.run(image, ["sh", "-c", "mkdir -p /www && echo sdk-web > /www/index.html && exec httpd -f -p 80 -h /www"],
                            detach=True, name=prefix + "-web", network=net.name, ports={"80/tcp": None})
srv.reload()
ep = srv.attrs["NetworkSettings"]["Networks"][net.name]
assert ep["IPAddress"].startswith("10.123.0."), ep
assert ep["Gateway"] == "10.123.0.1", ep
assert prefix + "-web" in ep["DNSNames"], ep
host_port = srv.ports["80/tcp"][0]["HostPort"]
assert int(host_port) > 0, srv.ports
out = client.containers.run(image, ["sh", "-c", "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 %s-web 80 | tail -n 1" % prefix],
                            network=net.name, remove=True)
assert out.strip() == b"sdk-web", out
cli = client.containers.run(image, ["sleep", "300"], detach=True, name=prefix + "-cli")
net.connect(cli, aliases=["sdkalias"], ipv4_address="10.123.0.77")
cli.reload()
assert cli.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"] == "10.123.0.77", cli.attrs["NetworkSettings"]
code, out = cli.exec_run(["nslookup", "sdkalias", "127.0.0.11"])
assert b"10.123.0.77" in out, out
net.reload()
assert cli.id in net.attrs["Containers"], net.attrs
net.disconnect(cli)
cli.reload()
assert net.name not in cli.attrs["NetworkSettings"]["Networks"], cli.attrs["NetworkSettings"]
try:
    net.remove()
    raise AssertionError("removed a network in use")
except docker.errors.APIError as e:
    assert e.status_code == 403, e
# a legacy link removed with `rm --link` (the containers stay), and listed as the target's
# name /PARENT/ALIAS until then
linked = api.create_container(image, ["sleep", "300"], host_config=api.create_host_config(links={srv.name: "lnk"}),
                              name=prefix + "-lk")
assert any("/%s-lk/lnk" % prefix in c["Names"] for c in api.containers(all=True)), api.containers(all=True)
api.remove_container("%s-lk/lnk" % prefix, link=True)
assert api.inspect_container(linked)["HostConfig"]["Links"] in (None, []), api.inspect_container(linked)["HostConfig"]
api.remove_container(linked, force=True)
srv.remove(force=True)
cli.remove(force=True)
net.remove()
# names with spaces; IPAM auxiliary addresses shown and kept out of allocations; no IPAM
# options given: null
ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.124.0.0/29", aux_addresses={"r": "10.124.0.2"})])
sp = api.create_network(prefix + " spaced", ipam=ipam)["Id"]
info = api.inspect_network(prefix + " spaced")
assert info["IPAM"]["Config"][0]["AuxiliaryAddresses"] == {"r": "10.124.0.2"}, info["IPAM"]
assert info["IPAM"]["Options"] is None, info["IPAM"]
c = client.containers.run(image, ["sleep", "300"], detach=True, network=prefix + " spaced")
c.reload()
assert c.attrs["NetworkSettings"]["Networks"][prefix + " spaced"]["IPAddress"] == "10.124.0.3", c.attrs["NetworkSettings"]
c.remove(force=True)
api.remove_network(sp)
try:
    client.networks.get(prefix + "-net")
    raise AssertionError("still there")
except docker.errors.NotFound:
    pass

# images
assert any(image in (i.tags or []) or image.split("/", 1)[-1] in str(i.tags) for i in client.images.list()), client.images.list()
img = client.images.get(image)
assert img.id.startswith("sha256:")

# errors
try:
    client.containers.get("nope-" + prefix)
    raise AssertionError("found")
except docker.errors.NotFound as e:
    assert "No such container" in str(e), e
try:
    client.containers.run(image, "true", name=prefix + "bad/name")
    raise AssertionError("bad name accepted")
except docker.errors.APIError as e:
    assert e.status_code == 400, e

print("ok")
