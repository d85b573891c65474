// The Vercel AI SDK (ai@6, @ai-sdk/openai@3) against the shim: `openai(model)` speaks Responses.
// Usage: node ai_sdk.mjs text|stream|tool|forced-tool   (env SHIM_BASE_URL=.../v1, SHIM_MODEL)
// Prints one JSON document: what the SDK returned, plus the request bodies it sent (a recording
// fetch), so the Python test can check both sides. Any SDK error exits non-zero with its message.
import { generateText, stepCountIs } from "ai";
import { mode, modelId, openai, plainText, run, stepsOf, weather } from "./ai_sdk_common.mjs";

const maxOutputTokens = Number(process.env.SHIM_MAX_OUTPUT_TOKENS || "16");

const model = openai(modelId);

async function main() {
  const common = { model, temperature: 0, maxOutputTokens };
  if (mode === "text" || mode === "stream") return plainText(common);
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

run(main);
