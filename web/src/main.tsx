import { render } from "preact";
import "./style.css";

render(<main><h1>CloudDB Manager</h1></main>, document.getElementById("app")!);
