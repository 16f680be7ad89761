// Entry of the training webview (built to dist/webview/training.js, plus training.css from uPlot's stylesheet).
import 'uplot/dist/uPlot.min.css';
import { TrainingApp } from './training/app';

new TrainingApp(document.getElementById('app')!);
