// The Vercel AI SDK (ai@6, @ai-sdk/openai@3) against the shim: `openai(model)` speaks Responses.
// Usage: node ai_sdk.mjs text|stream|tool|forced-tool   (env SHIM_BASE_URL=.../v1, SHIM_MODEL)
// Prints one JSON document: what the SDK returned, plus the request bodies it sent (a recording
// fetch), so the Python test can check both sides. Any SDK error exits non-zero with its message.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";

const mode = process.argv[2];
const baseURL = process.env.SHIM_BASE_URL;
const modelId = process.env.SHIM_MODEL;
const maxOutputTokens = Number(process.env.SHIM_MAX_OUTPUT_TOKENS || "16");

const requests = [];
async function recordingFetch(url, init) {
  requests.push({ url: String(url), body: init?.body ? JSON.parse(init.body) : null });
  return fetch(url, init);
}

const openai = createOpenAI({ baseURL, apiKey: "sk-test", fetch: recordingFetch });
const model = openai(modelId);

const weather = tool({
  description: "The weather for a city.",
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => `Sunny and 21 C in ${city}`,
});

function stepsOf(steps) {
  return steps.map((s) => ({
    finishReason: s.finishReason,
    text: s.text,
    toolCalls: s.toolCalls.map((c) => ({ toolCallId: c.toolCallId, toolName: c.toolName, input: c.input })),
    toolResults: s.toolResults.map((r) => ({ toolCallId: r.toolCallId, output: r.output })),
    responseId: s.response?.id,
  }));
}

async function main() {
  const common = { model, temperature: 0, maxOutputTokens };
  if (mode === "text") {
    const r = await generateText({ ...common, system: "Answer briefly.", prompt: "What is the capital of France?" });
    return { text: r.text, finishReason: r.finishReason, usage: r.usage, responseId: r.response.id, warnings: r.warnings };
  }
  if (mode === "stream") {
    const r = streamText({ ...common, prompt: "Name a colour.", onError: ({ error }) => { throw error; } });
    const deltas = [];
    const parts = [];
    for await (const part of r.fullStream) {
      parts.push(part.type);
      if (part.type === "error") throw part.error;
      if (part.type === "text-delta") deltas.push(part.text);
    }
    return { deltas, parts, text: await r.text, finishReason: await r.finishReason, usage: await r.usage };
  }
  if (mode === "tool" || mode === "forced-tool") {
    const forced = mode === "forced-tool";
    const r = await generateText({
      ...common,
      maxOutputTokens: forced ? 32 : undefined,
      prompt: "What is the weather in Paris?",
      tools: { get_weather: weather },
      // Forced (the real model): the first step must call the tool; the next one, which carries
      // the tool's result back, may not (else it would call it again). Scripted: the model
      // calls the tool, reads the result, then answers.
      toolChoice: forced ? { type: "tool", toolName: "get_weather" } : "auto",
      prepareStep: ({ stepNumber }) => (forced && stepNumber > 0 ? { toolChoice: "none" } : {}),
      stopWhen: stepCountIs(3),
    });
    return { text: r.text, finishReason: r.finishReason, steps: stepsOf(r.steps) };
  }
  throw new Error(`unknown mode ${mode}`);
}

main().then(
  (result) => process.stdout.write(JSON.stringify({ ...result, requests })),
  (error) => {
    process.stderr.write(`${error?.stack || error}\n${JSON.stringify(error?.responseBody ?? "")}\n`);
    process.exit(1);
  },
);
