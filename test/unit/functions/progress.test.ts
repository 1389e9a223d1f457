import { publishable } from "../../../functions/orchestrators/rotateAll";

describe("rotateAll's custom status", () => {
  it("lists every account while there are few", () => {
    const status = publishable({
      rotationId: "r",
      phase: "rotating",
      accounts: { a: "running", b: "rotated" },
    });
    expect(status.accounts).toEqual({ a: "running", b: "rotated" });
    expect(status.counts).toEqual({ running: 1, rotated: 1 });
  });

  it("stays under Durable Functions' 16 KB limit for thousands of accounts, keeping the running ones and the counts", () => {
    const accounts: Record<string, "queued" | "running" | "rotated"> = {};
    for (let i = 0; i < 5000; i++)
      accounts[`stmlaccount${String(i).padStart(5, "0")}`] =
        i < 8 ? "running" : i < 2000 ? "rotated" : "queued";
    const status = publishable({ rotationId: "r", phase: "rotating", accounts });
    expect(Object.keys(status.accounts)).toHaveLength(8);
    expect(status.counts).toEqual({ running: 8, rotated: 1992, queued: 3000 });
    // UTF-16: two bytes a character.
    expect(JSON.stringify(status).length * 2).toBeLessThan(16 * 1024);
  });
});
