import type { AnyCommand } from "../options.ts";
import type { Ctx } from "../context.ts";
import type { IdentityView } from "../../daemon/shapes.ts";

type MakeCtx = (cmd: AnyCommand) => Ctx;

/** `atlas id …` (docs/protocol.md#nodes-and-identities, README.md#commands): identity and agent card. */
export function registerId(program: AnyCommand, ctxOf: MakeCtx): void {
  const id = program.command("id").description("identity and agent card");

  id.command("init")
    .description("create this node's ed25519 identity")
    .option("--name <name>", "agent name")
    .option("--force", "replace an existing identity")
    .action(async (o, cmd) => {
      const ctx = ctxOf(cmd);
      const { initIdentity } = await import("../../identity/identity.ts");
      const { loadProfile } = await import("../../identity/profile.ts");
      const ident = await initIdentity(ctx.paths, { force: o.force, name: o.name });
      const p = await loadProfile(ctx.paths);
      if (ctx.json) {
        ctx.out.data(identityView(ctx, ident, p));
      } else ctx.out.fields([["Node ID", ident.nodeId], ["Name", p.name], ["Key", ctx.paths.keyFile]]);
    });

  id.command("show")
    .description("show node ID and agent card")
    .action(async (_o, cmd) => {
      const ctx = ctxOf(cmd);
      const { loadIdentity } = await import("../../identity/identity.ts");
      const { loadProfile } = await import("../../identity/profile.ts");
      const ident = await loadIdentity(ctx.paths);
      const p = await loadProfile(ctx.paths);
      if (ctx.json) {
        ctx.out.data(identityView(ctx, ident, p));
        return;
      }
      ctx.out.fields([
        ["Node ID", ident.nodeId],
        ["Name", p.name || "-"],
        ["Bio", p.bio || "-"],
        ["Skills", p.skills.length ? p.skills.join(", ") : "-"],
        ["Operator", p.operator ? `@${p.operator.username} (fid ${p.operator.fid})` : "-"],
        ["Key", ctx.paths.keyFile],
      ]);
    });

  const edit = (
    name: string,
    desc: string,
    arg: string,
    apply: (
      p: import("../../identity/profile.ts").Profile,
      v: string,
      m: typeof import("../../identity/profile.ts"),
    ) => import("../../identity/profile.ts").Profile,
    done: (p: import("../../identity/profile.ts").Profile) => [string, string],
  ) =>
    id.command(name)
      .description(desc)
      .argument(arg)
      .action(async (value: string, _o, cmd) => {
        const ctx = ctxOf(cmd);
        const { loadIdentity } = await import("../../identity/identity.ts");
        const m = await import("../../identity/profile.ts");
        await loadIdentity(ctx.paths); // a card without an identity makes no sense
        const p = apply(await m.loadProfile(ctx.paths), value, m);
        await m.saveProfile(ctx.paths, p);
        const [label, v] = done(p);
        if (ctx.json) ctx.out.data({ name: p.name, bio: p.bio, skills: p.skills });
        else ctx.out.fields([[label, v]]);
      });

  edit(
    "set-name",
    "set the agent name",
    "<name>",
    (p, v, m) => ({ ...p, name: m.validateName(v) }),
    (p) => ["Name", p.name],
  );
  edit("set-bio", "set the agent bio", "<bio>", (p, v, m) => ({ ...p, bio: m.validateBio(v) }), (p) => ["Bio", p.bio]);
  edit(
    "add-skill",
    "add a skill tag",
    "<skill>",
    (p, v, m) => m.addSkill(p, v),
    (p) => ["Skills", p.skills.join(", ")],
  );
  edit(
    "remove-skill",
    "remove a skill tag",
    "<skill>",
    (p, v, m) => m.removeSkill(p, v),
    (p) => ["Skills", p.skills.join(", ") || "-"],
  );
}

/** `id init --json` and `id show --json`: one identity shape. */
function identityView(
  ctx: Ctx,
  ident: import("../../identity/identity.ts").Identity,
  p: import("../../identity/profile.ts").Profile,
): IdentityView {
  return {
    node_id: ident.nodeId,
    public_key: Buffer.from(ident.publicKey).toString("hex"),
    name: p.name,
    bio: p.bio,
    skills: p.skills,
    operator: p.operator ? { username: p.operator.username, fid: p.operator.fid } : null,
    key_file: ctx.paths.keyFile,
    home: ctx.paths.home,
  };
}
