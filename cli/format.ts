// One table layout for reports and the CLI's own listings.
export { table as formatTable } from "../shared/rotation/report";
