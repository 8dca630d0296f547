// @tus/server with @tus/file-store or @tus/s3-store: the Node peers of bench/tus.
//
//   node server.mjs file PORT DIRECTORY
//   node server.mjs s3 PORT            (S3_ENDPOINT, S3_REGION, S3_BUCKET,
//                                       S3_ACCESS_KEY, S3_SECRET_KEY)
//
// Serves tus 1.0 at http://127.0.0.1:PORT/files/ with each store's defaults
// (s3-store: 8 MiB parts, its default concurrency) and prints "ready" once
// listening.
import { Server } from "@tus/server";
import { FileStore } from "@tus/file-store";
import { S3Store } from "@tus/s3-store";

const [kind, port, directory] = process.argv.slice(2);
let datastore;
if (kind === "file" && directory) {
  datastore = new FileStore({ directory });
} else if (kind === "s3") {
  const env = (name) => {
    const value = process.env[name];
    if (!value) throw new Error(`server.mjs: ${name} is not set`);
    return value;
  };
  datastore = new S3Store({
    s3ClientConfig: {
      bucket: env("S3_BUCKET"),
      region: env("S3_REGION"),
      endpoint: env("S3_ENDPOINT"),
      forcePathStyle: true,
      credentials: { accessKeyId: env("S3_ACCESS_KEY"), secretAccessKey: env("S3_SECRET_KEY") },
    },
  });
} else {
  console.error("usage: node server.mjs file PORT DIRECTORY | node server.mjs s3 PORT");
  process.exit(2);
}

const server = new Server({ path: "/files", datastore });
server.listen({ host: "127.0.0.1", port: Number(port) }, () => console.log("ready"));
