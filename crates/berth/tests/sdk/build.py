"""The Python docker SDK's builds against a berth daemon (the classic builder's API).

Usage: build.py DOCKER_HOST IMAGE NAME_PREFIX CONTEXT_DIR
Prints "ok" when every flow passed; any failure raises.
"""
import io
import os
import sys

import docker

host, image, prefix, ctx = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
client = docker.DockerClient(base_url=host, version="auto", timeout=120)
api = client.api


def write(name, text, mode=0o644):
    path = os.path.join(ctx, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def containers():
    return [c.name for c in client.containers.list(all=True)]


write("Dockerfile", f"""FROM {image}
ARG MSG=default
ARG UNUSED
LABEL suite={prefix}
COPY app.sh /usr/local/bin/app.sh
RUN echo "msg=$MSG" > /msg
CMD ["app.sh"]
""")
write("app.sh", "#!/bin/sh\ncat /msg\necho app ran\n", 0o755)
write(".dockerignore", "ignored.txt\n")
write("ignored.txt", "not sent\n")

# The high-level call: the image, and the log as dicts.
tag = prefix + "-hl:v1"
img, logs = client.images.build(path=ctx, tag=tag, buildargs={"MSG": "from the sdk"}, rm=True)
logs = list(logs)
streams = "".join(l.get("stream", "") for l in logs)
assert tag in img.tags, (img.tags, streams)
assert "Step 1/7 : FROM " + image in streams, streams
assert "Successfully built " + img.short_id.split(":")[1] in streams, streams
assert "Successfully tagged " + tag in streams, streams
assert not any("error" in l for l in logs), logs
# The classic builder reports the image's ID in an aux message.
assert any(l.get("aux", {}).get("ID") == img.id for l in logs), logs
assert img.labels["suite"] == prefix, img.labels
assert img.attrs["Config"]["Cmd"] == ["app.sh"], img.attrs["Config"]
out = client.containers.run(tag, remove=True)
assert out == b"msg=from the sdk\napp ran\n", out
assert containers() == [], containers()

# The low-level stream, decoded: every chunk a dict; an unchanged rebuild is all cache.
chunks = list(api.build(path=ctx, tag=prefix + "-ll:v1", buildargs={"MSG": "from the sdk"},
                        rm=True, decode=True))
assert all(isinstance(c, dict) for c in chunks), chunks
streams = "".join(c.get("stream", "") for c in chunks)
assert "Using cache" in streams, streams
assert " ---> Running in " not in streams, streams
assert client.images.get(prefix + "-ll:v1").id == img.id
# Another build arg: the RUN runs again; its output streams; a new image.
chunks = list(api.build(path=ctx, tag=prefix + "-ll:v2", buildargs={"MSG": "second"}, rm=True,
                        decode=True, nocache=False, labels={"extra": "label"}))
streams = "".join(c.get("stream", "") for c in chunks)
assert " ---> Running in " in streams, streams
img2 = client.images.get(prefix + "-ll:v2")
assert img2.id != img.id
assert img2.labels == {"suite": prefix, "extra": "label"}, img2.labels
out = client.containers.run(img2.id, remove=True)
assert out == b"msg=second\napp ran\n", out
# The .dockerignore'd file was not sent.
out = client.containers.run(img2.id, ["sh", "-c", "ls /; ls /usr/local/bin"], remove=True)
assert b"ignored.txt" not in out and b"app.sh" in out, out

# A Dockerfile alone as fileobj (the SDK tars it), and a Dockerfile named in the context.
df = io.BytesIO(f"FROM {image}\nRUN echo fileobj > /f\nCMD [\"cat\", \"/f\"]\n".encode())
img3, _ = client.images.build(fileobj=df, tag=prefix + "-fo", rm=True)
assert client.containers.run(img3.id, remove=True) == b"fileobj\n"
write("sub/Other.Dockerfile", f"FROM {image}\nCOPY app.sh /other.sh\nCMD [\"cat\", \"/other.sh\"]\n")
img4, _ = client.images.build(path=ctx, dockerfile="sub/Other.Dockerfile", tag=prefix + "-other",
                              rm=True)
assert client.containers.run(img4.id, remove=True).startswith(b"#!/bin/sh\ncat /msg")

# A failing step: BuildError with the step's message and the log so far; nothing left.
write("Dockerfile", f"""FROM {image}
RUN echo before the failure
RUN echo failing step; exit 7
RUN echo never
""")
try:
    client.images.build(path=ctx, tag=prefix + "-fail", rm=True)
    raise AssertionError("no BuildError")
except docker.errors.BuildError as e:
    assert e.msg == "The command '/bin/sh -c echo failing step; exit 7' returned a non-zero code: 7", e.msg
    log = list(e.build_log)
    text = "".join(l.get("stream", "") for l in log)
    assert "failing step" in text, log
    assert "never" not in text, log
    assert log[-1].get("errorDetail", {}).get("code") == 7, log[-1]
# The low-level stream carries the error as its last line.
chunks = list(api.build(path=ctx, rm=True, decode=True))
assert chunks[-1]["error"].endswith("returned a non-zero code: 7"), chunks[-1]
# A bad Dockerfile.
write("Dockerfile", f"FROM {image}\nNOPE something\n")
try:
    client.images.build(path=ctx, rm=True)
    raise AssertionError("no error")
except (docker.errors.BuildError, docker.errors.APIError) as e:
    assert "unknown instruction" in str(e).lower(), e
assert containers() == [], containers()
try:
    client.images.get(prefix + "-fail")
    raise AssertionError("the failed build was tagged")
except docker.errors.ImageNotFound:
    pass

for t in [tag, prefix + "-ll:v1", prefix + "-ll:v2", prefix + "-fo", prefix + "-other"]:
    client.images.remove(t)
print("ok")
