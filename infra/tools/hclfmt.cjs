// `terraform fmt -check` without terraform: HashiCorp's hclwrite.Format (the
// formatter terraform fmt is built on), compiled to WebAssembly and published
// on npm as @cdktf/hcl-tools. Usage: node hclfmt.cjs [--write] FILE...
// Prints each file whose formatting differs; exits 1 if any does (unless --write).
const fs = require("fs");
const { format } = require("@cdktf/hcl-tools");

async function main(args) {
  const write = args[0] === "--write";
  const files = write ? args.slice(1) : args;
  let differ = 0;
  for (const file of files) {
    const text = fs.readFileSync(file, "utf8");
    const formatted = await format(text);
    if (formatted !== text) {
      differ += 1;
      console.log(file);
      if (write) fs.writeFileSync(file, formatted);
    }
  }
  return write ? 0 : differ > 0 ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);
