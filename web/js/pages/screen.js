// The big screen: joins with its key (or reads a public meeting without
// one), then only renders. It reconnects and catches up by itself.

import { startStaffPage } from "../staff.js";
import { ScreenView } from "../views/screen.js";

startStaffPage({
  role: "screen",
  askName: false,
  allowViewer: true,
  ui: { notice: null },
  view: (a) => ScreenView(a),
  onStart() {},
});
