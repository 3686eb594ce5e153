import assert from "node:assert/strict";
import { join } from "node:path";
import {
  checkpointFolder,
  removeCheckpoint,
  removeCheckpointOrphans,
  writeCheckpointDir,
} from "../lib/io/checkpoint_dir.ts";

const names = (root: string) => [...Deno.readDirSync(root)].map((e) => e.name).sort();
const save = (dir: string, step: number) =>
  writeCheckpointDir(
    dir,
    step,
    (f) => Deno.writeTextFile(join(f, "trainer_state.json"), `${step}`),
  );
const stepOf = async (dir: string) =>
  Number(await Deno.readTextFile(join(dir, "trainer_state.json")));

Deno.test("a checkpoint is a link to its generation; a save switches it and removes the previous one", async () => {
  const root = await Deno.makeTempDir();
  const dir = join(root, "ckpt");
  assert.equal(await checkpointFolder(dir), undefined);
  await save(dir, 3);
  assert.ok(Deno.lstatSync(dir).isSymlink);
  assert.equal(await stepOf(dir), 3);
  await save(dir, 6);
  assert.equal(await stepOf(dir), 6);
  assert.deepEqual(names(root).length, 2, `${names(root)}`);
  assert.match(Deno.readLinkSync(dir), /^ckpt\.000000006\.[a-z0-9]+$/);
  // A failing fill changes nothing and leaves nothing behind.
  await assert.rejects(
    () => writeCheckpointDir(dir, 9, () => Promise.reject(new Error("disk full"))),
    /disk full/,
  );
  assert.equal(await stepOf(dir), 6);
  assert.equal(names(root).length, 2);
  await removeCheckpoint(dir);
  assert.deepEqual(names(root), []);
  await Deno.remove(root);
});

Deno.test("orphans of crashed saves are removed by the next save; other files are kept", async () => {
  const root = await Deno.makeTempDir();
  const dir = join(root, "ckpt");
  await save(dir, 2);
  const orphans = [
    "ckpt.000000004.abcd1234.tmp", // a save killed while writing
    "ckpt.000000004.efgh5678", // a save killed before the switch
    "ckpt.k2j4h5g6.link.tmp", // a save killed between making and renaming its link
    "ckpt.4242.x1y2z3.tmp", // the former writeDirAtomic's temporary
    "ckpt.4242.x1y2z3.tmp.old", // and its moved-away old folder
  ];
  for (const o of orphans) Deno.mkdirSync(join(root, o));
  Deno.mkdirSync(join(root, "ckpt.bak")); // not ours
  Deno.writeTextFileSync(join(root, "notes.txt"), "keep");
  assert.equal(await stepOf(dir), 2, "orphans do not change what a reader sees");
  await save(dir, 4);
  assert.deepEqual(names(root), ["ckpt", Deno.readLinkSync(dir), "ckpt.bak", "notes.txt"].sort());
  assert.deepEqual(await removeCheckpointOrphans(dir), []);
  await removeCheckpoint(dir);
  await Deno.remove(root, { recursive: true });
});

Deno.test("a former-layout checkpoint folder becomes a link on its next save; other folders are refused", async () => {
  const root = await Deno.makeTempDir();
  const dir = join(root, "ckpt");
  Deno.mkdirSync(dir);
  assert.equal(await checkpointFolder(dir), undefined, "an empty folder holds no checkpoint");
  Deno.writeTextFileSync(join(dir, "trainer_state.json"), "1");
  assert.equal(await checkpointFolder(dir), dir);
  await save(dir, 5);
  assert.ok(Deno.lstatSync(dir).isSymlink);
  assert.equal(await stepOf(dir), 5);
  assert.equal(names(root).length, 2);
  const other = join(root, "data");
  Deno.mkdirSync(other);
  Deno.writeTextFileSync(join(other, "rows.csv"), "a,b");
  await assert.rejects(() => save(other, 1), /holding other files than a checkpoint/);
  assert.deepEqual(names(other), ["rows.csv"]);
  await removeCheckpoint(dir);
  await Deno.remove(root, { recursive: true });
});

Deno.test("with the link missing (a crash while converting a former folder), readers find the newest generation", async () => {
  const root = await Deno.makeTempDir();
  const dir = join(root, "ckpt");
  await save(dir, 3);
  const gen3 = Deno.readLinkSync(dir);
  Deno.removeSync(dir); // the link is gone, as between the two renames of a conversion
  Deno.mkdirSync(join(root, "ckpt.000000001.oldoldol"));
  assert.equal(await checkpointFolder(dir), join(root, gen3));
  await save(dir, 4);
  assert.equal(await stepOf(dir), 4);
  assert.equal(names(root).length, 2);
  await removeCheckpoint(dir);
  await Deno.remove(root, { recursive: true });
});
