import { ERROR_CODE_LIST, ERROR_CODES, FlowStart, FmError } from "@flowmonkey/shared";
import { HTTPException } from "hono/http-exception";
import { describe, expect, it } from "vitest";
import { PROBLEM_CONTENT_TYPE, problemResponse, problemTitle, toProblem } from "../../src/http/problem.js";

describe("toProblem", () => {
  it.each(ERROR_CODE_LIST)("keeps an FmError's code %s and takes the status from the code table", (code) => {
    const problem = toProblem(new FmError(code, `something about ${code}`));
    expect(problem).toMatchObject({
      code,
      status: ERROR_CODES[code].httpStatus,
      detail: `something about ${code}`,
      type: `urn:flowmonkey:error:${code}`,
      title: problemTitle(code),
    });
  });

  it("turns a ZodError into INVALID_INPUT 400 naming each bad field", () => {
    const parsed = FlowStart.safeParse({ priority: "urgent", region: "a.b" });
    expect(parsed.success).toBe(false);
    const problem = toProblem(parsed.error);
    expect(problem.code).toBe("INVALID_INPUT");
    expect(problem.status).toBe(400);
    expect(problem.detail).toContain("priority");
    expect(problem.errors?.map((e) => e.path)).toEqual(expect.arrayContaining(["priority", "region"]));
  });

  it("keeps the field issues an FmError carries from the shared codec", () => {
    const problem = toProblem(
      new FmError("INVALID_INPUT", "invalid FlowStart: input.name: required", {
        details: [{ path: ["input", "name"], message: "required" }, "not an issue"],
      }),
    );
    expect(problem.errors).toEqual([{ path: "input.name", message: "required" }]);
  });

  it("turns a JSON SyntaxError into INVALID_JSON 400", () => {
    let thrown: unknown;
    try {
      JSON.parse("{bad");
    } catch (err) {
      thrown = err;
    }
    expect(toProblem(thrown)).toMatchObject({ code: "INVALID_JSON", status: 400 });
  });

  it("maps Hono's 413 to PAYLOAD_TOO_LARGE", () => {
    expect(toProblem(new HTTPException(413))).toMatchObject({ code: "PAYLOAD_TOO_LARGE", status: 413 });
  });

  it("hides an unexpected error's message behind INTERNAL 500", () => {
    const problem = toProblem(new Error("password=hunter2 at db.internal:5432"));
    expect(problem).toMatchObject({ code: "INTERNAL", status: 500 });
    expect(problem.detail).not.toContain("hunter2");
    expect(toProblem("a thrown string").code).toBe("INTERNAL");
  });
});

describe("problemResponse", () => {
  it("is application/problem+json with the problem's status and body", async () => {
    const res = problemResponse(toProblem(new FmError("FLOW_NOT_FOUND", 'no flow "x" is registered')));
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toBe(PROBLEM_CONTENT_TYPE);
    expect(await res.json()).toEqual({
      type: "urn:flowmonkey:error:FLOW_NOT_FOUND",
      title: "Flow not found",
      status: 404,
      detail: 'no flow "x" is registered',
      code: "FLOW_NOT_FOUND",
    });
  });
});
